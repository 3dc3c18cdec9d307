package observe_test

import (
	"fmt"
	"testing"

	"github.com/ferryhq/ferry/internal/observe"
)

type teller interface{ Tell() string }

type named string

func (n named) Tell() string { return string(n) }

type fan []teller

func (f fan) Tell() string {
	s := ""
	for _, t := range f {
		s += t.Tell()
	}
	return s
}

func join(obs ...teller) teller {
	return observe.Join(obs, func(l []teller) teller { return fan(l) })
}

func TestJoin(t *testing.T) {
	if got := join(nil, named("a"), nil); got != named("a") {
		t.Fatalf("a single observer left must come back as it is, got %#v", got)
	}
	if got := join(named("a"), nil, named("b")).Tell(); got != "ab" {
		t.Fatalf("fan-out told %q, want in order %q", got, "ab")
	}
	if got := join(); got == nil || got.Tell() != "" {
		t.Fatalf("no observers must give an empty, callable observer, got %#v", got)
	}
}

func ExampleJoin() {
	o := join(named("metrics"), nil, named("+traces"))
	fmt.Println(o.Tell())
	// Output: metrics+traces
}
