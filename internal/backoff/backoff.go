package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy is a capped exponential backoff. The zero Factor doubles.
type Policy struct {
	// Base is the first delay.
	Base time.Duration
	// Max caps every delay; 0 or less means no cap below the largest
	// Duration.
	Max time.Duration
	// Factor multiplies the delay after each retry. Default (< 1): 2.
	Factor float64
}

// Delay is the delay after n earlier retries: Base·Factor^n, capped at Max.
// n < 0 counts as 0; a huge n never overflows.
func (p Policy) Delay(n int) time.Duration {
	ceiling := p.Max
	if ceiling <= 0 {
		ceiling = time.Duration(1<<63 - 1)
	}
	factor := p.Factor
	if factor < 1 {
		factor = 2
	}
	d := float64(p.Base)
	for range max(n, 0) {
		if d*factor >= float64(ceiling) {
			return ceiling
		}
		d *= factor
	}
	return min(time.Duration(d), ceiling)
}

// Equal is "equal jitter": half of d for sure and up to the other half at
// random, so retries spread out but none comes much too early.
func Equal(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d-d/2+1)
}

// Spread varies d at random by up to frac of it either way (frac 0.1: ±10%).
func Spread(d time.Duration, frac float64) time.Duration {
	if frac <= 0 || d <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + frac*(2*rand.Float64()-1)))
}
