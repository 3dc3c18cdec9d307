package importserver_test

import (
	"os"
	"testing"

	"github.com/ferryhq/ferry/storage/storagetest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(registryChild())
	}
	storagetest.Main(m)
}
