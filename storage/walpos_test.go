package storage

import "testing"

func TestRecordEnd(t *testing.T) {
	const seg = 16 << 20
	g := walGeometry{blockSize: 8192, segmentSize: seg}
	for _, c := range []struct {
		name         string
		insert, want uint64
	}{
		{"mid-page", 3*seg + 9897624, 3*seg + 9897624},
		{"after a segment switch: past the long header", 3*seg + longPageHeader, 3 * seg},
		{"at a page start: past the short header", 3*seg + 5*8192 + shortPageHeader, 3*seg + 5*8192},
		// A record continued from the page before can end right after a
		// header; a short-header page's offset 40 is such an end.
		{"a continuation ending at offset 40 of a later page", 3*seg + 5*8192 + longPageHeader, 3*seg + 5*8192 + longPageHeader},
		{"offset 24 of a segment's first page is inside its header: not an insert position, kept", 3*seg + shortPageHeader, 3*seg + shortPageHeader},
		{"a continuation ending at offset 48 of a segment's first page", 3*seg + 48, 3*seg + 48},
	} {
		if got := g.recordEnd(c.insert); got != c.want {
			t.Errorf("%s: recordEnd(%#x) = %#x, want %#x", c.name, c.insert, got, c.want)
		}
	}
	if got := (walGeometry{}).recordEnd(3*seg + longPageHeader); got != 3*seg+longPageHeader {
		t.Errorf("unknown geometry corrected %#x to %#x", 3*seg+longPageHeader, got)
	}
}
