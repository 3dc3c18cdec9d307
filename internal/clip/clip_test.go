package clip_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ferryhq/ferry/internal/clip"
)

func TestNeverSplitsARune(t *testing.T) {
	s := strings.Repeat("é€😀a", 50)
	for n := -1; n <= len(s)+1; n++ {
		p, m := clip.Prefix(s, n), clip.Marked(s, n)
		if !utf8.ValidString(p) || !utf8.ValidString(m) {
			t.Fatalf("n=%d: split a rune: %q / %q", n, p, m)
		}
		if len(p) > max(n, 0) || !strings.HasPrefix(s, p) {
			t.Fatalf("n=%d: Prefix = %q", n, p)
		}
		if n >= len(clip.Ellipsis) && len(m) > n {
			t.Fatalf("n=%d: Marked is %d bytes", n, len(m))
		}
		if n >= len(s) && (p != s || m != s) {
			t.Fatalf("n=%d: a string that fits must stay whole", n)
		}
	}
}

func ExampleMarked() {
	fmt.Println(clip.Marked("naïve café", 8))
	fmt.Println(clip.Prefix("naïve", 3))
	// Output:
	// naïv…
	// na
}
