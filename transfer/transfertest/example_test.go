package transfertest_test

import (
	"context"
	"fmt"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

func ExampleGenerate() {
	ctx := context.Background()
	b := transfertest.NewMemBucket()
	reg, err := transfertest.Generate(ctx, b, transfertest.SmallSpec(1))
	if err != nil {
		panic(err)
	}
	tags, manifests, blobs, _ := reg.Counts()
	fmt.Printf("%d repositories, %d tags, %d manifests, %d blobs\n", len(reg.Repositories), tags, manifests, blobs)
	for _, r := range reg.Repositories {
		fmt.Println(r.Name)
	}
	// The same seed always gives the same registry, so tests can state
	// exactly what an import must produce.
	want := reg.Expect(transfertest.ExpectOptions{Tags: transfer.MostRecentTags(1), Pass: transfer.FinalImport})
	_, _, selected := want.Counts()
	fmt.Println("tags kept by MostRecentTags(1):", selected)
	// Output:
	// 7 repositories, 60 tags, 59 manifests, 217 blobs
	// group-00/project-000
	// group-00/project-000/qa
	// group-00/project-000/qa/cache
	// group-00/project-000/qa/tools
	// group-00/project-002
	// group-00/project-004
	// group-00/project-006
	// tags kept by MostRecentTags(1): 7
}
