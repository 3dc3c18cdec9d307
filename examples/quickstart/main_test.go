package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/dashboard"
	"github.com/ferryhq/ferry/internal/syncbuf"
	"github.com/ferryhq/ferry/storage/storagetest"
)

func TestMain(m *testing.M) { storagetest.Main(m) }

// The README's first command, as it runs: a throwaway PostgreSQL when this
// machine has the binaries, in-memory stores otherwise.
func TestQuickstartRuns(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, options{rows: 20_000}))
	t.Log("\n" + out.String())
	require.Contains(t, out.String(), "done in")
	require.Contains(t, out.String(), "- blobs: fileblob bucket")
	requireMainJob(t, out.String())
}

// With no PostgreSQL at all, everything runs on Ferry's in-memory stores.
func TestQuickstartInMemory(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, options{noPostgres: true, rows: 20_000, capacity: 2}))
	t.Log("\n" + out.String())
	require.Contains(t, out.String(), "using in-memory stores")
	require.Contains(t, out.String(), "in-memory store and lease")
	require.Contains(t, out.String(), "at most 2 imports at once (capacity 2)")
	require.Contains(t, out.String(), "on bbm's in-memory store")
	requireMainJob(t, out.String())
}

// -database-url: a database that outlives the run can take the quickstart
// again and again, and -keep keeps the files.
func TestQuickstartExternalDatabaseTwiceAndKeep(t *testing.T) {
	url := storagetest.URL(t)
	for range 2 {
		var out bytes.Buffer
		require.NoError(t, run(context.Background(), &out, options{databaseURL: url, rows: 5_000, keep: true}))
		require.Contains(t, out.String(), "PostgreSQL at the given URL")
		require.Contains(t, out.String(), "on PostgreSQL")
		requireMainJob(t, out.String())
		_, kept, ok := strings.Cut(out.String(), "kept ")
		require.True(t, ok, "the temp dir is kept with -keep")
		kept = strings.TrimSpace(kept)
		require.DirExists(t, kept+"/dst/docker/registry/v2/repositories")
		require.NoError(t, os.RemoveAll(kept))
	}
}

func TestQuickstartBadOptions(t *testing.T) {
	require.Error(t, run(context.Background(), &bytes.Buffer{}, options{capacity: -1}))
	require.Error(t, run(context.Background(), &bytes.Buffer{}, options{rows: -5}))
}

// requireMainJob checks that the output shows every step of the main job.
func requireMainJob(t *testing.T, out string) {
	t.Helper()
	for _, want := range []string{
		"- registry: generated 7 repositories",
		"through the enqueuer, capacity",
		"progress: 7/7 imported",
		"- imports: 7/7 done",
		"destination verified",
		"verified: every row has checksum = md5(payload)",
		"summary",
	} {
		require.Contains(t, out, want)
	}
}

// -serve: after the run, the dashboard serves the run's stores until the
// context ends.
func TestQuickstartServe(t *testing.T) {
	out := &syncbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, out, options{noPostgres: true, rows: 2_000, serve: true}) }()
	var url string
	deadline := time.Now().Add(2 * time.Minute)
	for url == "" {
		require.True(t, time.Now().Before(deadline), "no dashboard URL printed:\n%s", out.String())
		if m := regexp.MustCompile(`dashboard: (http://\S+/ferry/)`).FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	var o dashboard.Overview
	resp, err := http.Get(url + "api/overview")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&o))
	resp.Body.Close()
	require.Equal(t, o.Imports.Total, o.Imports.States[4].Count, "every repository imported: %+v", o.Imports.States)
	require.Equal(t, bbm.StatusFinished, o.Migrations.List[0].Status)
	// The Enqueuer's forecast is made in the background by the first
	// page; a later one shows it: nothing left.
	require.Eventually(t, func() bool {
		var o dashboard.Overview
		resp, err := http.Get(url + "api/overview")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if json.NewDecoder(resp.Body).Decode(&o) != nil || o.Imports.Forecast == nil {
			return false
		}
		f := o.Imports.Forecast
		return f.Known && f.Error == "" && f.Remaining == 0 && f.Left.Duration() == 0
	}, time.Minute, 20*time.Millisecond, "a forecast of nothing left")
	resp, err = http.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	cancel()
	require.NoError(t, <-done)
	require.Contains(t, out.String(), "dashboard: stopped")
}
