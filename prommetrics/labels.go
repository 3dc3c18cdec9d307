package prommetrics

import "sync"

// OtherLabel is the label value that stands for every value past a
// label's limit (Options.MaxLabelValues).
const OtherLabel = "other"

// boundedLabel keeps the values of one host-defined label (a migration
// name, a lease key, a replica) to a fixed number: the first max distinct
// values are kept as they are, later ones become OtherLabel. Values are
// config-time names, so in practice the limit is never reached; it is a
// guard against a host that puts something per-repository there.
type boundedLabel struct {
	max int

	mu   sync.RWMutex
	seen map[string]struct{}
}

func newBoundedLabel(max int) *boundedLabel {
	return &boundedLabel{max: max, seen: make(map[string]struct{})}
}

// value returns v, or OtherLabel once max other values were seen.
func (b *boundedLabel) value(v string) string {
	b.mu.RLock()
	_, ok := b.seen[v]
	full := len(b.seen) >= b.max
	b.mu.RUnlock()
	switch {
	case ok:
		return v
	case full:
		return OtherLabel
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.seen[v]; ok {
		return v
	}
	if len(b.seen) >= b.max {
		return OtherLabel
	}
	b.seen[v] = struct{}{}
	return v
}

// oneOf returns v when it is one of known, else def: for labels whose
// values come from a fixed set the core package defines, in case a host
// passes something else.
func oneOf[T ~string](v T, def string, known ...T) string {
	for _, k := range known {
		if v == k {
			return string(v)
		}
	}
	return def
}
