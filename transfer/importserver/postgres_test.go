package importserver_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/storage/storagetest"
	"github.com/ferryhq/ferry/transfer/importserver"
	"github.com/ferryhq/ferry/transfer/importserver/importservertest"
)

func TestPostgresStore(t *testing.T) {
	importservertest.TestStore(t, func(t *testing.T) importserver.Store {
		s, err := importserver.NewPostgresStore(storage.FromPool(storagetest.Pool(t)), importserver.PostgresOptions{})
		require.NoError(t, err)
		return s
	})
}
