package dashboard_test

import (
	"testing"

	"github.com/ferryhq/ferry/storage/storagetest"
)

// TestMain runs the tests and benchmarks, stopping the throwaway PostgreSQL
// that the benchmark starts.
func TestMain(m *testing.M) { storagetest.Main(m) }
