package transfertest_test

import (
	"context"
	"testing"

	"github.com/ferryhq/ferry/transfer/transfertest"
)

func TestMemSink(t *testing.T) {
	transfertest.RunSinkTests(t, func(t *testing.T) transfertest.SinkHarness {
		s := transfertest.NewMemSink()
		return transfertest.SinkHarness{Sink: s, State: func(context.Context) (transfertest.State, error) { return s.State(), nil }}
	})
}
