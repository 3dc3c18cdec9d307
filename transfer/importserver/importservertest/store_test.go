package importservertest_test

import (
	"testing"

	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/importserver/importservertest"
)

func TestMemoryStore(t *testing.T) {
	importservertest.TestStore(t, func(t *testing.T) importserver.Store {
		return importservertest.NewStore(importservertest.StoreOptions{})
	})
}
