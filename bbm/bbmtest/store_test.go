package bbmtest_test

import (
	"testing"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
)

func TestMemoryStoreConformance(t *testing.T) {
	bbmtest.TestStore(t, func(t *testing.T) bbm.Store { return bbmtest.NewStore(bbmtest.StoreOptions{}) })
}
