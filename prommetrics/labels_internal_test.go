package prommetrics

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBoundedLabel(t *testing.T) {
	b := newBoundedLabel(3)
	for _, v := range []string{"a", "b", "c"} {
		require.Equal(t, v, b.value(v))
	}
	require.Equal(t, OtherLabel, b.value("d"))
	require.Equal(t, "a", b.value("a"), "known values stay")

	// Concurrent first sightings never exceed the bound.
	b = newBoundedLabel(10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				b.value(fmt.Sprintf("v%d-%d", g, i))
			}
		})
	}
	wg.Wait()
	require.Len(t, b.seen, 10)
}

func TestOneOf(t *testing.T) {
	require.Equal(t, "x", oneOf("x", "def", "x", "y"))
	require.Equal(t, "def", oneOf("z", "def", "x", "y"))
	require.Equal(t, "def", oneOf("", "def", "x"))
}
