package pglease_test

import (
	"log/slog"
	"testing"

	"github.com/ferryhq/ferry/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var discard = slog.New(slog.DiscardHandler)
