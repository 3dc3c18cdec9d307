package backoff_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/backoff"
)

func TestDelayDoublesToTheCap(t *testing.T) {
	p := backoff.Policy{Base: 10 * time.Millisecond, Max: 100 * time.Millisecond}
	want := []time.Duration{10, 20, 40, 80, 100, 100}
	for n, w := range want {
		if got := p.Delay(n); got != w*time.Millisecond {
			t.Errorf("Delay(%d) = %s, want %s", n, got, w*time.Millisecond)
		}
	}
	if got := p.Delay(-3); got != 10*time.Millisecond {
		t.Errorf("Delay(-3) = %s", got)
	}
	if got := p.Delay(1 << 30); got != 100*time.Millisecond {
		t.Errorf("huge n: %s", got)
	}
	uncapped := backoff.Policy{Base: time.Second}
	if got := uncapped.Delay(200); got <= 0 {
		t.Errorf("uncapped Delay(200) overflowed: %s", got)
	}
	tripled := backoff.Policy{Base: time.Second, Max: time.Minute, Factor: 3}
	if got := tripled.Delay(2); got != 9*time.Second {
		t.Errorf("factor 3, Delay(2) = %s", got)
	}
}

func TestJitterStaysInBounds(t *testing.T) {
	for range 1000 {
		if d := backoff.Equal(100 * time.Millisecond); d < 50*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("Equal: %s", d)
		}
		if d := backoff.Spread(100*time.Millisecond, 0.1); d < 90*time.Millisecond || d > 110*time.Millisecond {
			t.Fatalf("Spread: %s", d)
		}
	}
	if backoff.Equal(0) != 0 || backoff.Spread(time.Second, 0) != time.Second {
		t.Fatal("no jitter for zero")
	}
}

func ExamplePolicy_Delay() {
	p := backoff.Policy{Base: 100 * time.Millisecond, Max: time.Second}
	for n := range 5 {
		fmt.Print(p.Delay(n), " ")
	}
	fmt.Println()
	// Output: 100ms 200ms 400ms 800ms 1s
}
