package syncbuf_test

import (
	"fmt"
	"sync"

	"github.com/ferryhq/ferry/internal/syncbuf"
)

func ExampleBuffer() {
	var buf syncbuf.Buffer
	var wg sync.WaitGroup
	wg.Go(func() { fmt.Fprint(&buf, "written by another goroutine") })
	wg.Wait()
	fmt.Println(buf.String())
	// Output: written by another goroutine
}
