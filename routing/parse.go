package routing

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Parse parses a worker selector exactly as GitLab's WorkerMatcher does,
// accepting everything GitLab accepts and reading it the same way.
//
// A selector is "*" (after trimming surrounding whitespace: every worker), or
// alternatives separated by "|" (a worker matches if any alternative does),
// each a conjunction of terms joined by "&". A term is attribute=v1,v2,…
// (the worker's value is one of the values; for tags, it has one of the
// tags) or attribute!=v1,v2,… (the exact negation). The attributes are
// worker_name, name, feature_category, urgency, resource_boundary,
// has_external_dependencies, tags and queue_namespace. There are no
// parentheses, quotes or escapes.
//
// What GitLab does with odd input, and so what Parse does:
//   - the string is split on "|", then each alternative on "&", dropping
//     trailing empty pieces: "" matches nothing, "urgency=high|" and
//     "urgency=high&" mean urgency=high, while an empty leading or middle
//     alternative ("|urgency=high", "a=b||c=d", "&") matches every worker;
//   - a term must start with attribute(=|!=)value at the start of a line;
//     characters after the longest run of [A-Za-z0-9_:,] are ignored
//     ("urgency=high " and `urgency=high"` read as urgency=high);
//   - an empty leading or middle term ("&urgency=high"), leading whitespace
//     (" urgency=high", "a=b & c=d"), whitespace around the operator, quotes
//     at the start of a value, a missing value and "*" inside a larger
//     selector are errors of kind InvalidTerm; an attribute other than the
//     eight is UnknownAttribute;
//   - values are split on "," dropping trailing empties; an empty value
//     matches nothing; has_external_dependencies is true only for the text
//     "true", any other value means false.
//
// ParseStrict rejects the silently accepted oddities as well, and Lint
// reports every one of them with GitLab's reading. Errors are *SyntaxError
// values with the Problem kind and the byte offset at fault.
//
// Parsing is linear in the length of the selector.
func Parse(query string) (Selector, error) {
	sc := scanSelector(query, false)
	if sc.err != nil {
		return Selector{}, sc.err
	}
	return sc.sel, nil
}

// selectorScan is the result of reading a selector: the selector GitLab
// would build, its first GitLab error, and every oddity GitLab accepts
// silently (and, when asked, every further GitLab error).
type selectorScan struct {
	query    string
	sel      Selector
	err      *SyntaxError
	findings []Finding      // in offset order; GitLab errors only when all was set
	values   []scannedValue // every value of every term, only when all was set
}

// scannedValue is one value of a term, where the linter can point at it.
type scannedValue struct {
	attr   Attribute
	negate bool
	text   string
	offset int
}

// scanSelector reads query. With all set it goes on after GitLab errors and
// records them as findings too, for the linter.
func scanSelector(query string, all bool) selectorScan {
	sc := selectorScan{query: query}
	if !utf8.ValidString(query) {
		off := invalidUTF8Offset(query)
		sc.fail(query, off, InvalidEncoding, fmt.Sprintf("byte 0x%02x at offset %d is not valid UTF-8", query[off], off),
			"GitLab fails: Ruby raises ArgumentError (invalid byte sequence) before matching anything")
		return sc
	}
	if rubyStrip(query) == "*" {
		sc.sel = Selector{all: true}
		return sc
	}
	if query == "" {
		sc.note(query, 0, EmptySelector, "the selector is empty", "GitLab matches no worker with it")
		return sc
	}
	alts, dropped := rubySplit(query, 0, len(query), '|')
	if dropped > 0 {
		at := alts.endOffset(0)
		if len(alts) == 0 {
			sc.note(query, 0, EmptyAlternative, "the selector has only empty alternatives",
				"GitLab reads no alternative at all and matches no worker")
		} else {
			sc.note(query, at, EmptyAlternative, "empty alternative after the last |",
				"GitLab ignores it")
		}
	}
	var vacuous bool
	for _, a := range alts {
		if a.start == a.end {
			vacuous = true
			sc.note(query, a.start, EmptyAlternative, "empty alternative",
				"GitLab reads an alternative without terms, which matches every worker")
			continue
		}
		terms, tdropped := rubySplit(query, a.start, a.end, '&')
		if tdropped > 0 {
			if len(terms) == 0 {
				vacuous = true
				sc.note(query, a.start, EmptyAlternative, "alternative made only of &",
					"GitLab reads an alternative without terms, which matches every worker")
				continue
			}
			sc.note(query, terms.endOffset(a.start), EmptyTerm, "empty term after the last &", "GitLab ignores it")
		}
		var alt []term
		for _, p := range terms {
			t, ok := sc.term(query, p, all)
			if !ok {
				if !all {
					return sc
				}
				continue
			}
			alt = append(alt, t)
		}
		if len(alt) > 0 {
			sc.sel.alternatives = append(sc.sel.alternatives, alt)
		}
	}
	if vacuous {
		// An alternative without terms is always true: the selector matches
		// every worker, which "*" says canonically.
		sc.sel = Selector{all: true}
	}
	if sc.err != nil {
		sc.sel = Selector{}
	}
	return sc
}

// note records an oddity GitLab accepts.
func (sc *selectorScan) note(query string, offset int, kind Problem, msg, gitlab string) {
	sc.findings = append(sc.findings, Finding{Kind: kind, Rule: -1, Query: query, Offset: offset, Msg: msg, GitLab: gitlab})
}

// fail records a GitLab error: the first becomes sc.err, each becomes a
// finding.
func (sc *selectorScan) fail(query string, offset int, kind Problem, msg, gitlab string) {
	if sc.err == nil {
		sc.err = &SyntaxError{Query: query, Offset: offset, Kind: kind, Msg: msg + " (" + gitlab + ")"}
	}
	sc.note(query, offset, kind, msg, gitlab)
}

// term reads the term query[p.start:p.end] by GitLab's pattern
// ^(\w+)(!?=)([\w:,]+), where ^ is any line start.
func (sc *selectorScan) term(query string, p piece, all bool) (term, bool) {
	text := query[p.start:p.end]
	if text == "" {
		what := "empty term before &"
		if p.start > 0 && query[p.start-1] == '&' {
			what = "empty term after &"
		}
		sc.fail(query, p.start, InvalidTerm, what, "GitLab raises InvalidTerm")
		return term{}, false
	}
	line, m, ok := matchTermLine(text)
	if !ok {
		off, why := explainInvalidTerm(text)
		sc.fail(query, p.start+off, InvalidTerm, fmt.Sprintf("invalid term %s: %s", quoteShort(text), why), "GitLab raises InvalidTerm")
		return term{}, false
	}
	base := p.start + m.lineStart
	if line > 1 {
		sc.note(query, p.start, MultiLineTerm, fmt.Sprintf("term spans lines; its line %d starts a valid term", line),
			fmt.Sprintf("GitLab ignores the text before line %d and reads %s", line, quoteShort(text[m.lineStart:m.valueEnd])))
	}
	name := text[m.lineStart:m.nameEnd]
	attr, known := lookupAttribute(name)
	if !known {
		sc.fail(query, base, UnknownAttribute, fmt.Sprintf("unknown attribute %q; want one of %s", name, attributeList),
			"GitLab raises UnknownPredicate")
		return term{}, false
	}
	op := text[m.nameEnd:m.valueStart]
	t := term{attr: attr, negate: op == "!="}
	if rest := text[m.valueEnd:]; rest != "" {
		sc.note(query, p.start+m.valueEnd, TrailingText, describeTrailing(rest),
			fmt.Sprintf("GitLab ignores it and reads %s", quoteShort(text[m.lineStart:m.valueEnd])))
	}

	vstart := p.start + m.valueStart
	values, dropped := rubySplit(query, vstart, p.start+m.valueEnd, ',')
	switch {
	case len(values) == 0:
		gitlab := "GitLab reads an empty value list: = matches no worker"
		if t.negate {
			gitlab = "GitLab reads an empty value list: != matches every worker"
		}
		sc.note(query, vstart, EmptyValue, "no value, only commas", gitlab)
	case dropped > 0:
		sc.note(query, values.endOffset(vstart), EmptyValue, "trailing comma", "GitLab ignores it")
	}
	b := newValueBuilder(len(values))
	for _, v := range values {
		s := query[v.start:v.end]
		if all {
			sc.values = append(sc.values, scannedValue{attr: attr, negate: t.negate, text: s, offset: v.start})
		}
		switch {
		case s == "" && attr == AttrHasExternalDependencies:
			sc.note(query, v.start, EmptyValue, "empty value", "GitLab reads it as false")
		case s == "":
			sc.note(query, v.start, EmptyValue, "empty value", "GitLab keeps it; it matches no worker")
			continue
		case attr == AttrHasExternalDependencies && s != "true" && s != "false":
			sc.note(query, v.start, BooleanText, fmt.Sprintf("%s is not true or false", quoteShort(s)),
				"GitLab reads every value except exactly true as false")
		case symbolAttrs&attr != 0 && s[0] == ':':
			sc.note(query, v.start, ColonValue, fmt.Sprintf("value %s starts with a colon", quoteShort(s)),
				fmt.Sprintf("GitLab compares it with the Symbol :%q, which no worker has; write %s", s, s[1:]))
		}
		if attr == AttrHasExternalDependencies {
			if s == "true" {
				t.wantTrue = true
			} else {
				t.wantFalse = true
			}
			continue
		}
		b.add(s)
	}
	if attr == AttrHasExternalDependencies {
		// Canonical values, in the order GitLab would list them.
		if t.wantTrue {
			b.add("true")
		}
		if t.wantFalse {
			b.add("false")
		}
	}
	t.values, t.set = b.values, b.set
	return t, true
}

// termMatch holds the spans of one match of GitLab's term pattern, relative
// to the term text.
type termMatch struct {
	lineStart, nameEnd, valueStart, valueEnd int
}

// matchTermLine finds the first line of text at whose start GitLab's pattern
// matches, returning its 1-based line number and the spans.
func matchTermLine(text string) (int, termMatch, bool) {
	line := 1
	for start := 0; ; line++ {
		if m, ok := matchTermAt(text, start); ok {
			return line, m, true
		}
		i := strings.IndexByte(text[start:], '\n')
		if i < 0 {
			return 0, termMatch{}, false
		}
		start += i + 1
	}
}

// matchTermAt matches (\w+)(!?=)([\w:,]+) at text[start:]. The pattern needs
// no backtracking: \w+ cannot be followed by a word character, so its
// longest run is the only candidate.
func matchTermAt(text string, start int) (termMatch, bool) {
	m := termMatch{lineStart: start}
	i := start
	for i < len(text) && isWordByte(text[i]) {
		i++
	}
	if i == start {
		return m, false
	}
	m.nameEnd = i
	switch {
	case strings.HasPrefix(text[i:], "!="):
		i += 2
	case strings.HasPrefix(text[i:], "="):
		i++
	default:
		return m, false
	}
	m.valueStart = i
	for i < len(text) && (isWordByte(text[i]) || text[i] == ':' || text[i] == ',') {
		i++
	}
	if i == m.valueStart {
		return m, false
	}
	m.valueEnd = i
	return m, true
}

// explainInvalidTerm says why text does not match the term pattern at its
// start, with the offset of the fault.
func explainInvalidTerm(text string) (int, string) {
	c := text[0]
	switch {
	case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		return 0, "leading whitespace is not allowed"
	case c == '*':
		return 0, "* matches every worker only as the whole selector"
	case c == '=' || c == '!':
		return 0, "missing attribute before the operator"
	case !isWordByte(c):
		return 0, fmt.Sprintf("want an attribute name, got %s", quoteRune(text))
	}
	i := 0
	for i < len(text) && isWordByte(text[i]) {
		i++
	}
	rest := text[i:]
	switch {
	case rest == "":
		return i, "no operator; want attribute=value or attribute!=value"
	case rest[0] == ' ' || rest[0] == '\t':
		return i, "whitespace before the operator is not allowed"
	case rest[0] == '!' && !strings.HasPrefix(rest, "!="):
		return i, "want = or != after the attribute"
	case rest[0] != '=' && rest[0] != '!':
		return i, fmt.Sprintf("want = or != after the attribute, got %s", quoteRune(rest))
	}
	if strings.HasPrefix(rest, "!=") {
		i += 2
	} else {
		i++
	}
	rest = text[i:]
	switch {
	case rest == "":
		return i, "missing value"
	case rest[0] == '"' || rest[0] == '\'':
		return i, "quotes are not part of the selector language; write the value bare"
	case rest[0] == ' ' || rest[0] == '\t':
		return i, "whitespace after the operator is not allowed"
	case rest[0] == '=':
		return i, "== is not an operator; use ="
	}
	return i, fmt.Sprintf("a value must start with a letter, digit, _, : or , not %s", quoteRune(rest))
}

// describeTrailing names what follows a term's value list.
func describeTrailing(rest string) string {
	switch c := rest[0]; {
	case c == ' ' || c == '\t' || c == '\r' || c == '\n':
		return fmt.Sprintf("whitespace after the value list (%s)", quoteShort(rest))
	case c == '"' || c == '\'':
		return fmt.Sprintf("quote after the value list (%s); the selector language has no quotes", quoteShort(rest))
	}
	return fmt.Sprintf("characters after the value list: %s", quoteShort(rest))
}

// piece is a span [start, end) of the query.
type piece struct{ start, end int }

type pieces []piece

// endOffset is where dropped trailing pieces began: just after the last kept
// piece (at its separator), or at from when none was kept.
func (ps pieces) endOffset(from int) int {
	if len(ps) == 0 {
		return from
	}
	return ps[len(ps)-1].end
}

// rubySplit splits q[from:to] on sep as Ruby's String#split with a
// one-character string: every separator splits, trailing empty pieces are
// dropped (their number is returned) and an empty string gives no pieces.
func rubySplit(q string, from, to int, sep byte) (pieces, int) {
	if from == to {
		return nil, 0
	}
	var ps pieces
	start := from
	for {
		i := strings.IndexByte(q[start:to], sep)
		if i < 0 {
			ps = append(ps, piece{start, to})
			break
		}
		ps = append(ps, piece{start, start + i})
		start += i + 1
	}
	n := len(ps)
	for n > 0 && ps[n-1].start == ps[n-1].end {
		n--
	}
	return ps[:n], len(ps) - n
}

// rubyStrip removes leading and trailing NUL and ASCII whitespace, as Ruby's
// String#strip.
func rubyStrip(s string) string {
	return strings.Trim(s, "\x00\t\n\v\f\r ")
}

// invalidUTF8Offset returns the offset of the first byte of s that is not
// part of a valid UTF-8 sequence.
func invalidUTF8Offset(s string) int {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(s)
}

// isWordByte reports whether c is in Ruby's \w: ASCII letters, digits and _.
func isWordByte(c byte) bool { return isUpper(c) || isLower(c) || isDigit(c) || c == '_' }

// quoteRune quotes the first character of s for messages.
func quoteRune(s string) string {
	r, _ := utf8.DecodeRuneInString(s)
	return fmt.Sprintf("%q", r)
}

// valueBuilder collects distinct values in order in linear time: a slice for
// order, and a set once the list is long enough for lookups to matter.
type valueBuilder struct {
	values []string
	set    map[string]struct{}
}

// valueSetThreshold is the list length from which terms keep a set: below
// it, scanning the slice is faster than hashing.
const valueSetThreshold = 8

func newValueBuilder(n int) valueBuilder {
	b := valueBuilder{values: make([]string, 0, n)}
	if n > valueSetThreshold {
		b.set = make(map[string]struct{}, n)
	}
	return b
}

func (b *valueBuilder) add(v string) {
	if b.set != nil {
		if _, dup := b.set[v]; dup {
			return
		}
		b.set[v] = struct{}{}
	} else {
		for _, have := range b.values {
			if have == v {
				return
			}
		}
		if len(b.values) == valueSetThreshold {
			b.set = make(map[string]struct{}, 2*valueSetThreshold)
			for _, have := range b.values {
				b.set[have] = struct{}{}
			}
			b.set[v] = struct{}{}
		}
	}
	b.values = append(b.values, v)
}
