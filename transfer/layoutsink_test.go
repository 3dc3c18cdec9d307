package transfer_test

import (
	"context"
	"testing"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

func TestLayoutSink(t *testing.T) {
	transfertest.RunSinkTests(t, func(t *testing.T) transfertest.SinkHarness {
		b := memBucket(t)
		l := mustLayout(t, "")
		return transfertest.SinkHarness{
			Sink: transfer.NewLayoutSink(b, l, transfer.RetryPolicy{}),
			State: func(ctx context.Context) (transfertest.State, error) {
				return transfertest.ReadLayoutState(ctx, b, l)
			},
		}
	})
}
