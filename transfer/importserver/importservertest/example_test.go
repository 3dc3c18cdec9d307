package importservertest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/importserver/importservertest"
)

// The in-memory Store behaves like the Postgres one: a start is a
// compare-and-set, and an outcome is recorded with its notification.
func ExampleStore() {
	ctx := context.Background()
	s := importservertest.NewStore(importservertest.StoreOptions{})
	imp, _ := s.Begin(ctx, importserver.BeginRequest{Path: "group/image", Type: importserver.PreImport, Owner: "registry-0"})
	fmt.Println(imp.Status, imp.Run)
	_, err := s.Begin(ctx, importserver.BeginRequest{Path: "group/image", Type: importserver.FinalImport, Owner: "registry-0"})
	fmt.Println(err)
	_, _, _ = s.Finish(ctx, importserver.Outcome{Path: "group/image", Run: imp.Run, Status: importserver.StatusPreImportComplete})
	ns, _ := s.ClaimNotifications(ctx, importserver.ClaimRequest{Owner: "registry-0", Token: "t", Limit: 10, LeaseFor: time.Minute})
	fmt.Println(len(ns), ns[0].Status)
	// Output:
	// pre_import_in_progress 1
	// importserver: pre-import still in progress: group/image (status pre_import_in_progress, run 1)
	// 1 pre_import_complete
}
