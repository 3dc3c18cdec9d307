package bbmtest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
)

// The fake Store keeps migrations and jobs in memory and follows the same
// rules as PostgresStore: a job is claimed (its attempt counted) before it
// runs, and its outcome is recorded after.
func ExampleNewStore() {
	ctx := context.Background()
	s := bbmtest.NewStore(bbmtest.StoreOptions{})
	m := &bbm.Migration{Name: "fill", Schema: "public", Table: "items", Column: "id", KeyColumn: "id",
		MinKey: 1, MaxKey: 100, BatchSize: 50, WorkName: "fill"}
	if err := s.CreateMigration(ctx, m); err != nil {
		panic(err)
	}
	job, _ := s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, MinKey: 1, MaxKey: 50, BatchSize: 50, Lease: time.Minute})
	fmt.Println(job.Status, job.Attempts)
	job, _ = s.FinishJob(ctx, nil, bbm.JobResult{JobID: job.ID, Attempt: job.Attempts})
	fmt.Println(job.Status)
	_, err := s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, MinKey: 40, MaxKey: 60, BatchSize: 20, Lease: time.Minute})
	fmt.Println(err != nil)
	st, _ := s.JobStats(ctx, m.ID)
	fmt.Println(st.Finished, st.KeysDone)
	// Output:
	// running 1
	// finished
	// true
	// 1 50
}
