package importserver_test

import (
	"testing"

	"github.com/ferryhq/ferry/storage/storagetest"
)

func TestMain(m *testing.M) { storagetest.Main(m) }
