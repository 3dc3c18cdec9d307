package bbm_test

import (
	"testing"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/bbm/bbmtest"
)

func TestPostgresStoreConformance(t *testing.T) {
	bbmtest.TestStore(t, func(t *testing.T) bbm.Store {
		return bbm.NewPostgresStore(pgSetup(t), bbm.PostgresStoreOptions{})
	})
}
