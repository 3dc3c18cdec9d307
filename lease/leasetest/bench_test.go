package leasetest_test

import (
	"fmt"
	"testing"

	"github.com/ferryhq/ferry/lease/leasetest"
)

func BenchmarkContended(b *testing.B) {
	r := leasetest.BenchContended(b, leasetest.NewLocker(leasetest.Options{}), "bench", 50)
	fmt.Printf("ferry-bench: leasetest-contended-acquire %s (in-memory Locker)\n", r)
}
