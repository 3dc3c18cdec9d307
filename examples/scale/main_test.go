package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/storage/storagetest"
)

func TestMain(m *testing.M) { storagetest.Main(m) }

// The program end to end on 1/500 of the seed's images with a millisecond
// per operation.
func TestScaleRuns(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), &out, options{
		seed: 1, divisor: 500, latency: time.Millisecond, failureRate: 0.01, sinkLatency: 100 * time.Microsecond,
		capacity: 2, concurrency: 8, baseline: 1, progress: time.Second,
	})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"enqueuer: in-memory store and lease",
		"verification         OK",
		"ferry-bench: scale-import ferry=",
		"ferry-bench: scale-eta-error",
		"ferry-bench: scale-verified",
		"baseline             one at a time",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// -database-url keeps the enqueuer's repositories and lease in PostgreSQL;
// a second run on the same database is refused with a clear error rather
// than mixing two imports' states.
func TestScaleOnPostgres(t *testing.T) {
	url := storagetest.URL(t)
	o := options{
		seed: 1, divisor: 500, latency: time.Millisecond, failureRate: 0.01, sinkLatency: 100 * time.Microsecond,
		capacity: 2, concurrency: 8, progress: time.Second, databaseURL: url,
	}
	var out bytes.Buffer
	err := run(context.Background(), &out, o)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"enqueuer: PostgreSQL store and lease", "verification         OK", "imported             8 of 8 repositories"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	err = run(context.Background(), &bytes.Buffer{}, o)
	if err == nil || !strings.Contains(err.Error(), "does not hold this workload's repositories") {
		t.Fatalf("second run on the same database: %v", err)
	}
}
