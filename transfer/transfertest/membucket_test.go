package transfertest_test

import (
	"testing"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/transfertest"
)

func TestMemBucket(t *testing.T) {
	transfertest.BucketSuite(t, func(*testing.T) transfer.Bucket { return transfertest.NewMemBucket() })
}
