package transfer

import "testing"

func TestBoundedCacheForgetsOldest(t *testing.T) {
	c := newBoundedCache[int, int](4)
	for i := range 100 {
		c.put(i, i*i)
		if v, ok := c.get(i); !ok || v != i*i {
			t.Fatalf("just put %d: got %d, %v", i, v, ok)
		}
	}
	if _, ok := c.get(0); ok {
		t.Fatal("the oldest entry is still remembered")
	}
	if n := len(c.cur) + len(c.old); n > 8 {
		t.Fatalf("cache holds %d entries, want at most 8", n)
	}
	if _, ok := c.get(97); !ok {
		t.Fatal("a recent entry was forgotten")
	}
}
