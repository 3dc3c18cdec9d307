package benchreport_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/internal/benchreport"
)

const sample = `goos: linux
BenchmarkX-2   10  100 ns/op
ferry-bench: storage-routed-read ferry=45µs baseline=48µs ratio=0.92 target<=1.2 (routed vs primary)
noise ferry-bench: bbm-backfill ferry=120000rows/s baseline=150000rows/s ratio=0.8 target>=0.7 longest_tx=400ms
ferry-bench: lease-pg ferry=1ms baseline=0.5ms ratio=2.0x target<=1.3x
ferry-bench: plain ferry=3s
`

func TestParseAndJudge(t *testing.T) {
	results, err := benchreport.Parse(strings.NewReader(sample))
	require.NoError(t, err)
	require.Len(t, results, 4)
	byName := map[string]benchreport.Result{}
	for _, r := range results {
		byName[r.Name] = r
	}
	met, ok := byName["storage-routed-read"].Met()
	require.True(t, ok)
	require.True(t, met)
	met, ok = byName["lease-pg"].Met()
	require.True(t, ok)
	require.False(t, met)
	require.Equal(t, "longest_tx=400ms", byName["bbm-backfill"].Notes)
	_, ok = byName["plain"].Met()
	require.False(t, ok)
}

func TestWriteTable(t *testing.T) {
	results, err := benchreport.Parse(strings.NewReader(sample))
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, benchreport.WriteTable(&buf, results))
	require.Contains(t, buf.String(), "| lease-pg | 1ms | 0.5ms | 2× | <= 1.3× | **no** |")
}

func ExampleWriteTable() {
	results, _ := benchreport.Parse(strings.NewReader(
		"ferry-bench: copy ferry=900MB/s baseline=1000MB/s ratio=0.9 target>=0.8\n"))
	_ = benchreport.WriteTable(os.Stdout, results)
	// Output:
	// | benchmark | Ferry | baseline | ratio | target | met | notes |
	// |---|---|---|---|---|---|---|
	// | copy | 900MB/s | 1000MB/s | 0.9× | >= 0.8× | yes |  |
}
