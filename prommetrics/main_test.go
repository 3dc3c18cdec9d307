package prommetrics_test

import (
	"testing"

	"github.com/ferryhq/ferry/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
