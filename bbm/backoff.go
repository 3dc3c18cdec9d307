package bbm

import (
	"math/rand/v2"
	"time"
)

// backoff is base doubled n times, capped.
func backoff(base, ceiling time.Duration, n int) time.Duration {
	d := base
	for range n {
		if d >= ceiling/2 {
			return ceiling
		}
		d *= 2
	}
	return min(d, ceiling)
}

// jitter varies d at random by up to frac of it either way.
func jitter(d time.Duration, frac float64) time.Duration {
	if frac <= 0 || d <= 0 {
		return d
	}
	f := 1 + frac*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}
