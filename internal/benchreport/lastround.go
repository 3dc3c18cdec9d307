package benchreport

import (
	"flag"
	"strconv"
	"strings"
	"testing"
	"time"
)

// LastRound reports whether b is in the round whose figures a benchmark
// should print as its `ferry-bench:` line: the one that reaches
// -test.benchtime (Nx or a duration), so a line is printed once.
func LastRound(b *testing.B) bool {
	f := flag.Lookup("test.benchtime")
	if f == nil {
		return true
	}
	v := f.Value.String()
	if n, ok := strings.CutSuffix(v, "x"); ok {
		want, err := strconv.Atoi(n)
		return err != nil || b.N >= want
	}
	d, err := time.ParseDuration(v)
	return err != nil || b.Elapsed() >= d
}
