package routing

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/ferryhq/ferry/internal/clip"
)

// GitLab reads all_queues.yml and gitlab.yml with Ruby's YAML library
// (Psych), which gives an unquoted scalar a Ruby class by its text: ":low" is
// a Symbol, "yes" is true, "1_000" is an Integer, "2024-01-02" a Date. The
// selector compares by class (Symbol :low is not String "low"), the router
// treats false as "no queue" and Sidekiq turns any other queue value into
// text. rubyValue reproduces that reading for the values that matter here.

// rubyKind is the Ruby class Psych gives a YAML value.
type rubyKind uint8

const (
	rubyNil rubyKind = iota
	rubyString
	rubySymbol
	rubyTrue
	rubyFalse
	rubyInteger
	rubyFloat
	rubyDate
	rubyTime  // a timestamp: its text depends on the host's time zone
	rubyOther // a list, a mapping or an explicitly tagged value
)

// rubyValue is a YAML value as Ruby sees it.
type rubyValue struct {
	kind rubyKind
	// text is the String or Symbol text, or Ruby's to_s of an Integer,
	// Float or Date. Empty for nil, booleans, times and others.
	text string
	// raw is the scalar's text as written, or for a list, a mapping or a
	// tagged value a description; what() builds messages from it.
	raw string
}

// what describes the value for messages ("the integer 5"). It is only
// called on errors, so reading a file builds no messages.
func (v rubyValue) what() string {
	switch v.kind {
	case rubyOther:
		return v.raw
	case rubyNil:
		if v.raw == "" {
			return "null"
		}
		return "null (" + quoteShort(v.raw) + ")"
	case rubyTrue:
		return "true (" + quoteShort(v.raw) + ")"
	case rubyFalse:
		return "false (" + quoteShort(v.raw) + ")"
	case rubyString:
		return "the string " + quoteShort(v.raw)
	case rubySymbol:
		return "the symbol " + v.raw
	case rubyInteger:
		return "the integer " + v.raw
	case rubyFloat:
		return "the float " + v.raw
	case rubyDate:
		return "the date " + v.raw
	case rubyTime:
		return "the timestamp " + quoteShort(v.raw)
	}
	return "a value"
}

// blank reports whether Rails' blank? is true: nil, false, a String of
// whitespace only (Unicode White_Space, as Ruby's [[:space:]]), or an empty
// Symbol.
func (v rubyValue) blank() bool {
	switch v.kind {
	case rubyNil, rubyFalse:
		return true
	case rubyString:
		return strings.TrimFunc(v.text, unicode.IsSpace) == ""
	case rubySymbol:
		return v.text == ""
	}
	return false
}

// toS returns Ruby's to_s of the value (what Sidekiq stores as a queue
// name) and false for values whose text Ferry does not reproduce.
func (v rubyValue) toS() (string, bool) {
	switch v.kind {
	case rubyNil, rubyFalse:
		return "", true
	case rubyTrue:
		return "true", true
	case rubyTime, rubyOther:
		return "", false
	}
	return v.text, true
}

// rubyNode reads a YAML node the way Psych's safe loader does.
func rubyNode(n *yaml.Node) rubyValue {
	n = resolveAlias(n)
	switch n.Kind {
	case yaml.SequenceNode:
		return rubyValue{kind: rubyOther, raw: "a list"}
	case yaml.MappingNode:
		return rubyValue{kind: rubyOther, raw: "a mapping"}
	case yaml.ScalarNode:
	default:
		return rubyValue{kind: rubyOther, raw: "an unsupported YAML node"}
	}
	if n.Style&yaml.TaggedStyle != 0 {
		if n.ShortTag() == "!!str" {
			return rubyValue{kind: rubyString, text: n.Value, raw: n.Value}
		}
		return rubyValue{kind: rubyOther, raw: "a value tagged " + n.Tag}
	}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return rubyValue{kind: rubyString, text: n.Value, raw: n.Value}
	}
	return psychScalar(n.Value)
}

// psychScalar classifies the text of an unquoted, untagged scalar as Psych's
// ScalarScanner does.
func psychScalar(s string) rubyValue {
	if s == "" {
		return rubyValue{kind: rubyNil, raw: s}
	}
	str := rubyValue{kind: rubyString, text: s, raw: s}
	if psychLooksLikeText(s) || strings.Contains(s, "\n") {
		if utf8.RuneCountInString(s) > 5 {
			return str
		}
		switch {
		case anyLine(s, func(l string) bool {
			r, n := utf8.DecodeRuneInString(l)
			return n > 0 && !strings.ContainsRune("ytonfYTONF~", r)
		}):
			return str
		case s == "~" || anyLine(s, func(l string) bool { return strings.EqualFold(lineText(l), "null") }):
			return rubyValue{kind: rubyNil, raw: s}
		case anyLine(s, func(l string) bool { return equalFoldAny(lineText(l), "yes", "true", "on") }):
			return rubyValue{kind: rubyTrue, raw: s}
		case anyLine(s, func(l string) bool { return equalFoldAny(lineText(l), "no", "false", "off") }):
			return rubyValue{kind: rubyFalse, raw: s}
		}
		return str
	}
	// No newline from here on, so ^ and $ are the ends of s. A Symbol
	// cannot match the tests Psych makes before it, and the other types all
	// start with a digit, a sign or a dot, so most values skip the patterns.
	if len(s) >= 2 && s[0] == ':' {
		return rubyValue{kind: rubySymbol, text: psychSymbol(s), raw: s}
	}
	if c := s[0]; !(isDigit(c) || c == '-' || c == '+' || c == '.') {
		return str
	}
	switch {
	case psychTime.MatchString(s):
		return rubyValue{kind: rubyTime, raw: s}
	case psychDate.MatchString(s):
		if d, ok := rubyDateText(s); ok {
			return rubyValue{kind: rubyDate, text: d, raw: s}
		}
		return str
	case strings.EqualFold(strings.TrimPrefix(s, "+"), ".inf"):
		return rubyValue{kind: rubyFloat, text: "Infinity", raw: s}
	case strings.EqualFold(s, "-.inf"):
		return rubyValue{kind: rubyFloat, text: "-Infinity", raw: s}
	case strings.EqualFold(s, ".nan"):
		return rubyValue{kind: rubyFloat, text: "NaN", raw: s}
	case psychSexagesimalInt.MatchString(s):
		return rubyValue{kind: rubyInteger, text: sexagesimal(s, false), raw: s}
	case psychSexagesimalFloat.MatchString(s):
		return rubyValue{kind: rubyFloat, text: sexagesimal(s, true), raw: s}
	case psychFloat.MatchString(s):
		if s == "." || s == "+." || s == "-." {
			return str
		}
		t := psychDigitSeparators.Replace(s)
		t = psychFloatDot.ReplaceAllString(t, "$1")
		f, err := strconv.ParseFloat(t, 64)
		if err != nil && !math.IsInf(f, 0) {
			return str
		}
		return rubyValue{kind: rubyFloat, text: rubyFloatString(f), raw: s}
	case psychInt.MatchString(s):
		var n big.Int
		if _, ok := n.SetString(psychDigitSeparators.Replace(s), 0); !ok {
			return str
		}
		return rubyValue{kind: rubyInteger, text: n.String(), raw: s}
	}
	return str
}

// psychLooksLikeText is Psych's first test for a String: at some line start,
// an optional character that is not a digit, ".", ":" or "-", followed by a
// letter, "_", whitespace or one of !@#$%^&*(){}<>|/\~;=.
func psychLooksLikeText(s string) bool {
	textRune := func(r rune) bool {
		return unicode.IsLetter(r) || unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Other_Alphabetic, r) ||
			strings.ContainsRune("_ \t\r\n\f\v!@#$%^&*(){}<>|/\\~;=", r)
	}
	return anyLine(s, func(l string) bool {
		r0, n0 := utf8.DecodeRuneInString(l)
		if n0 == 0 {
			return false
		}
		if textRune(r0) {
			return true
		}
		if r0 >= '0' && r0 <= '9' || r0 == '.' || r0 == ':' || r0 == '-' {
			return false
		}
		r1, n1 := utf8.DecodeRuneInString(l[n0:])
		return n1 > 0 && textRune(r1)
	})
}

// anyLine reports whether f is true for the text from some line start (the
// start of s or just after a "\n") to the end of s, as a Ruby ^ anchor tries.
func anyLine(s string, f func(fromLineStart string) bool) bool {
	for start := 0; ; {
		if f(s[start:]) {
			return true
		}
		i := strings.IndexByte(s[start:], '\n')
		if i < 0 {
			return false
		}
		start += i + 1
	}
}

// lineText is the text up to the end of the line (a Ruby $ anchor).
func lineText(fromLineStart string) string {
	if i := strings.IndexByte(fromLineStart, '\n'); i >= 0 {
		return fromLineStart[:i]
	}
	return fromLineStart
}

func equalFoldAny(s string, words ...string) bool {
	for _, w := range words {
		if strings.EqualFold(s, w) {
			return true
		}
	}
	return false
}

var (
	psychTime             = regexp.MustCompile(`^-?\d{4}-\d{1,2}-\d{1,2}(?:[Tt]|\s+)\d{1,2}:\d\d:\d\d(?:\.\d*)?(?:\s*(?:Z|[-+]\d{1,2}:?(?:\d\d)?))?$`)
	psychDate             = regexp.MustCompile(`^\d{4}-(?:1[012]|0\d|\d)-(?:[12]\d|3[01]|0\d|\d)$`)
	psychSexagesimalInt   = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(:[0-5]?[0-9]){1,2}$`)
	psychSexagesimalFloat = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(:[0-5]?[0-9]){1,2}\.[0-9_]*$`)
	psychFloat            = regexp.MustCompile(`^[-+]?([0-9][0-9_,]*)?\.[0-9]*([eE][-+][0-9]+)?$`)
	psychFloatDot         = regexp.MustCompile(`\.([Ee]|$)`)
	psychDigitSeparators  = strings.NewReplacer(",", "", "_", "")
	psychInt              = regexp.MustCompile(`^(?:[-+]?0b[_,]*[0-1][0-1_,]*|[-+]?0[_,]*[0-7][0-7_,]*|[-+]?(?:0|[1-9](?:[0-9]|,[0-9]|_[0-9])*)|[-+]?0x[_,]*[0-9a-fA-F][0-9a-fA-F_,]*)$`)
)

// psychSymbol returns the name of the Symbol written s (":name", or
// ":'quoted name'" / `:"quoted name"`, as all_queues.yml writes
// :'add-on_provisioning').
func psychSymbol(s string) string {
	if q := s[1]; q == '"' || q == '\'' {
		if j := strings.LastIndexByte(s, q); j >= 2 {
			return strings.TrimPrefix(s[2:j], ":")
		}
	}
	return s[1:]
}

// rubyDateText validates a YYYY-M-D date as Date.strptime('%F') does and returns
// Date#to_s (zero-padded).
func rubyDateText(s string) (string, bool) {
	parts := strings.Split(s, "-")
	y, _ := strconv.Atoi(parts[0])
	m, _ := strconv.Atoi(parts[1])
	d, _ := strconv.Atoi(parts[2])
	if m < 1 || m > 12 || d < 1 {
		return "", false
	}
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[m-1]
	if m == 2 && (y%4 == 0 && y%100 != 0 || y%400 == 0) {
		days = 29
	}
	if d > days {
		return "", false
	}
	return fmt.Sprintf("%04d-%02d-%02d", y, m, d), true
}

// sexagesimal evaluates "a:b[:c]" as Psych does: each part times 60 to the
// power |index-2|, so "1:30" is 1*3600 + 30*60 (Psych's reading, not a
// typo here).
func sexagesimal(s string, float bool) string {
	parts := strings.Split(s, ":")
	if float {
		var f float64
		for e, p := range parts {
			v, _ := strconv.ParseFloat(strings.ReplaceAll(p, "_", ""), 64)
			f += v * math.Pow(60, math.Abs(float64(e-2)))
		}
		return rubyFloatString(f)
	}
	sum := new(big.Int)
	for e, p := range parts {
		v, _ := new(big.Int).SetString(strings.ReplaceAll(p, "_", ""), 10)
		pow := new(big.Int).Exp(big.NewInt(60), big.NewInt(int64(math.Abs(float64(e-2)))), nil)
		sum.Add(sum, v.Mul(v, pow))
	}
	return sum.String()
}

// rubyFloatString formats f as Ruby's Float#to_s: the shortest digits that
// read back as f, in fixed notation with at least one decimal when the
// decimal exponent is in [-4, 16), otherwise as "d.ddde+XX".
func rubyFloatString(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	sign := ""
	if math.Signbit(f) {
		sign = "-"
		f = -f
	}
	if f == 0 {
		return sign + "0.0"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	decpt := x + 1
	switch {
	case decpt > 0 && decpt <= 16:
		if len(digits) <= decpt {
			return sign + digits + strings.Repeat("0", decpt-len(digits)) + ".0"
		}
		return sign + digits[:decpt] + "." + digits[decpt:]
	case decpt <= 0 && decpt > -4:
		return sign + "0." + strings.Repeat("0", -decpt) + digits
	}
	frac := digits[1:]
	if frac == "" {
		frac = "0"
	}
	return fmt.Sprintf("%s%c.%se%+03d", sign, digits[0], frac, decpt-1)
}

// quoteShort quotes s for messages, cut to 40 bytes.
func quoteShort(s string) string {
	if len(s) > 40 {
		return strconv.Quote(clip.Prefix(s, 40)) + "…"
	}
	return strconv.Quote(s)
}
