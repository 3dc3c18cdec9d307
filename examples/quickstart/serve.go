package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ferryhq/ferry/dashboard"
)

// serveDashboard serves Ferry's dashboard on the stores the run used, at
// listen (default 127.0.0.1:0, a free port), prints its URL and serves
// until ctx ends (Ctrl-C). It is read-only: no Authorize.
func serveDashboard(ctx context.Context, out io.Writer, listen string, im importSummary, bf backfillSummary) error {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	h, err := dashboard.New(dashboard.Config{
		Prefix:       "/ferry",
		Title:        "Ferry quickstart",
		Migrations:   bf.admin,
		Repositories: im.store,
		Forecast:     im.enq,
		Leases:       []dashboard.LeaseKey{{Title: "enqueuer", Key: im.leaseKey, Locker: im.locker}},
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/ferry/", h)
	mux.Handle("GET /{$}", http.RedirectHandler("/ferry/", http.StatusFound))
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("-listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(out, "\ndashboard: http://%s/ferry/ (read-only; Ctrl-C stops)\n", ln.Addr())
	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintln(out, "dashboard: stopped")
	return nil
}
