package harness_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ferryhq/ferry/examples/scale/harness"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

// A small registry imported through the enqueuer, with 1 ms per object
// operation and 1 % of them failing, then verified.
func ExampleRun() {
	ctx := context.Background()
	cache, err := os.MkdirTemp("", "ferry-scale-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(cache)

	w, err := harness.Prepare(ctx, transfertest.SmallSpec(1), harness.WorkloadOptions{CacheDir: cache})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := harness.Run(ctx, w, harness.Options{
		Latency:     time.Millisecond,
		FailureRate: 0.01,
		Capacity:    2,
		MaxTags:     20,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("imported %d of %d repositories\n", res.Imported, res.Repositories)
	for _, r := range res.Rejected {
		fmt.Printf("rejected %s: %d tags\n", r.Path, r.Tags)
	}
	fmt.Printf("%d manifests, %d tags\n", res.Manifests, res.Tags)
	fmt.Println("verified:", res.Verification.OK())
	// Output:
	// imported 6 of 7 repositories
	// rejected group-00/project-006: 22 tags
	// 31 manifests, 38 tags
	// verified: true
}
