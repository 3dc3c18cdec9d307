package clip

import "unicode/utf8"

// Ellipsis marks where Marked cut a string.
const Ellipsis = "…"

// Prefix is the longest prefix of s of at most n bytes that ends on a rune
// boundary (s itself when it fits; "" when n <= 0).
func Prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Marked is s when it fits in n bytes, else its Prefix followed by
// Ellipsis, at most n bytes in all.
func Marked(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Prefix(s, n-len(Ellipsis)) + Ellipsis
}
