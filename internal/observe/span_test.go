package observe_test

import (
	"context"
	"testing"

	"github.com/ferryhq/ferry/internal/observe"
)

type key string

// spanner marks the context with its name at Start and records, at End,
// which of its own marks it was given back and the order of the calls.
type spanner struct {
	name string
	log  *[]string
}

func (s spanner) start(ctx context.Context) context.Context {
	*s.log = append(*s.log, "start "+s.name+" under "+parent(ctx))
	return context.WithValue(ctx, key("span"), s.name)
}

func (s spanner) end(ctx context.Context) {
	*s.log = append(*s.log, "end "+s.name+" with "+parent(ctx))
}

func parent(ctx context.Context) string {
	if v, ok := ctx.Value(key("span")).(string); ok {
		return v
	}
	return "-"
}

func TestStartEndThreadContexts(t *testing.T) {
	var log []string
	list := []spanner{{"a", &log}, {"b", &log}}
	start := func(s spanner, ctx context.Context) context.Context { return s.start(ctx) }
	end := func(s spanner, ctx context.Context) { s.end(ctx) }

	outer := observe.Start(context.Background(), list, start)
	inner := observe.Start(outer, list, start) // a nested operation
	observe.End(inner, list, end)
	observe.End(outer, list, end)
	observe.End(context.Background(), list, end) // not from Start: everyone gets ctx

	want := []string{
		"start a under -", "start b under a",
		"start a under b", "start b under a",
		"end b with b", "end a with a",
		"end b with b", "end a with a",
		"end b with -", "end a with -",
	}
	if len(log) != len(want) {
		t.Fatalf("calls %q, want %q", log, want)
	}
	for i := range want {
		if log[i] != want[i] {
			t.Fatalf("call %d: %q, want %q (all: %q)", i, log[i], want[i], log)
		}
	}
}

func TestCallNilAndSet(t *testing.T) {
	type key struct{}
	ctx := context.Background()
	if got := observe.CallStart[int](nil, ctx, 1); got != ctx {
		t.Fatal("a nil Start hook must return ctx unchanged")
	}
	got := observe.CallStart(func(ctx context.Context, e int) context.Context { return context.WithValue(ctx, key{}, e) }, ctx, 7)
	if got.Value(key{}) != 7 {
		t.Fatal("a set Start hook's context must come back")
	}
	observe.Call[int](nil, ctx, 1) // must not panic
	var told int
	observe.Call(func(_ context.Context, e int) { told = e }, ctx, 3)
	if told != 3 {
		t.Fatalf("Call told %d, want 3", told)
	}
}
