package bbmtest_test

import (
	"context"
	"errors"
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
	m := &bbm.Migration{Name: "fill", Schema: "public", Table: "items", Column: "id", KeyColumns: []string{"id"},
		KeyTypes: []string{"bigint"}, Lower: bbm.IntKey(1), Upper: bbm.IntKey(100), BatchSize: 50, WorkName: "fill"}
	if err := s.CreateMigration(ctx, m); err != nil {
		panic(err)
	}
	job, _ := s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, Start: bbm.IntKey(1), End: bbm.IntKey(50), BatchSize: 50, Rows: 50, Lease: time.Minute})
	fmt.Println(job.Status, job.Attempts)
	job, _ = s.FinishJob(ctx, nil, bbm.JobResult{JobID: job.ID, Attempt: job.Attempts})
	fmt.Println(job.Status)
	// A range cut before the first job was recorded lost the race.
	_, err := s.ClaimJob(ctx, bbm.Claim{MigrationID: m.ID, After: nil, Start: bbm.IntKey(1), End: bbm.IntKey(50), BatchSize: 50, Rows: 50, Lease: time.Minute})
	fmt.Println(errors.Is(err, bbm.ErrJobConflict))
	st, _ := s.JobStats(ctx, m.ID)
	fmt.Println(st.Finished, st.RowsDone)
	// Output:
	// running 1
	// finished
	// true
	// 1 50
}
