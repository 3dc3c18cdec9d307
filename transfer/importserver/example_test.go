package importserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/importserver/importservertest"
)

// A registry embeds the import server: it gives it its importer, the
// repositories it has, a store and a secret, mounts its Handler, and
// starts it. The coordinator (enqueuer.HTTPRegistry and enqueuer.Handler
// in Ferry) starts imports and receives their outcomes.
func Example() {
	ctx := context.Background()
	// The coordinator's notification endpoint (enqueuer.Handler in Ferry).
	outcomes := make(chan string, 2)
	coordinator := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n struct{ Path, Status string }
		_ = json.NewDecoder(r.Body).Decode(&n)
		outcomes <- n.Status + " " + n.Path
	}))
	defer coordinator.Close()

	srv, err := importserver.New(importserver.Config{
		// A *transfer.Importer from the old storage into the new one in a
		// real registry.
		Importer: importservertest.NewImporter(importservertest.ImporterOptions{}),
		Repositories: importserver.RepositoriesFunc(func(_ context.Context, path string) (bool, error) {
			return path == "group/image", nil
		}),
		// importserver.NewPostgresStore(db, ...) in a real registry.
		Store:     importservertest.NewStore(importservertest.StoreOptions{}),
		Authorize: importserver.BearerSecret("import-secret"),
		Notify:    importserver.NotifyConfig{URL: coordinator.URL + "/api/v4/internal/registry", Secret: "notify-secret"},
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	if err := srv.Start(ctx); err != nil {
		panic(err)
	}
	defer srv.Shutdown(ctx)
	registry := httptest.NewServer(srv.Handler())
	defer registry.Close()

	start := func(importType string) int {
		req, _ := http.NewRequest(http.MethodPut, registry.URL+"/gitlab/v1/import/group/image/?import_type="+importType, nil)
		req.Header.Set("Authorization", "Bearer import-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	fmt.Println("pre-import:", start("pre"))
	fmt.Println(<-outcomes)
	fmt.Println("final import:", start("final"))
	fmt.Println(<-outcomes)
	fmt.Println("again:", start("final"))
	// Output:
	// pre-import: 202
	// pre_import_complete group/image
	// final import: 202
	// import_complete group/image
	// again: 200
}
