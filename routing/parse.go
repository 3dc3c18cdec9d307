package routing

import (
	"fmt"
	"slices"
	"strings"
)

// Parse parses a worker selector query.
//
// A query is one or more alternatives separated by "|"; a worker matches if
// any alternative matches. An alternative is one or more terms joined by "&";
// all must match. A term is attribute=value[,value…], true if the attribute
// equals any of the values, or attribute!=value[,value…], true if it equals
// none. For tags, = means "has any of these tags" and != "has none of them".
// has_external_dependencies takes the values true and false. The query "*"
// alone matches every worker.
//
// Attributes: worker_name, name (the current queue name), feature_category,
// urgency, resource_boundary, has_external_dependencies, tags,
// queue_namespace. Spaces around attributes, operators and values are
// ignored. Values are printable ASCII without spaces and without the
// characters | & , = ! *.
//
// Errors are *SyntaxError values giving the byte offset of the problem.
func Parse(query string) (Selector, error) {
	p := parser{q: query}
	p.skipSpace()
	if p.eof() {
		return Selector{}, p.errAt(p.pos, "empty query; use * to match every worker")
	}
	if p.peek() == '*' {
		star := p.pos
		p.pos++
		p.skipSpace()
		if p.eof() {
			return Selector{all: true}, nil
		}
		return Selector{}, p.errAt(star, "* matches every worker and must be the whole query")
	}
	var s Selector
	for {
		alt, err := p.alternative()
		if err != nil {
			return Selector{}, err
		}
		s.alternatives = append(s.alternatives, alt)
		if p.eof() {
			return s, nil
		}
		p.pos++ // alternative stops only at the end or at '|'
	}
}

type parser struct {
	q   string
	pos int
}

func (p *parser) eof() bool  { return p.pos >= len(p.q) }
func (p *parser) peek() byte { return p.q[p.pos] }

func (p *parser) skipSpace() {
	for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
		p.pos++
	}
}

func (p *parser) errAt(offset int, format string, args ...any) error {
	return &SyntaxError{Query: p.q, Offset: offset, Msg: fmt.Sprintf(format, args...)}
}

// prevSignificant returns the last non-space byte before the current
// position, or 0 at the start of the query.
func (p *parser) prevSignificant() byte {
	for i := p.pos - 1; i >= 0; i-- {
		if c := p.q[i]; c != ' ' && c != '\t' {
			return c
		}
	}
	return 0
}

// alternative parses terms joined by '&' and stops at '|' or the end.
func (p *parser) alternative() ([]term, error) {
	p.skipSpace()
	if p.eof() || p.peek() == '|' {
		if p.prevSignificant() == '|' {
			return nil, p.errAt(p.pos, "empty alternative after |")
		}
		return nil, p.errAt(p.pos, "empty alternative before |")
	}
	var terms []term
	for {
		t, err := p.term()
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
		if p.eof() || p.peek() == '|' {
			return terms, nil
		}
		p.pos++ // term stops only at the end, '|' or '&'
	}
}

// term parses attribute(=|!=)value[,value…] and stops at '&', '|' or the end.
func (p *parser) term() (term, error) {
	p.skipSpace()
	if p.eof() || p.peek() == '&' || p.peek() == '|' {
		if p.prevSignificant() == '&' {
			return term{}, p.errAt(p.pos, "empty term after &")
		}
		return term{}, p.errAt(p.pos, "empty term before &")
	}

	start := p.pos
	// Read the whole word, so "urg-ency" is reported as one unknown attribute.
	for !p.eof() && isValueByte(p.peek()) {
		p.pos++
	}
	name := p.q[start:p.pos]
	if name == "" {
		switch c := p.peek(); c {
		case '=', '!':
			return term{}, p.errAt(start, "missing attribute before %s", operatorAt(p.q, start))
		case '*':
			return term{}, p.errAt(start, "* matches every worker and must be the whole query")
		default:
			return term{}, p.errAt(start, "unexpected %s; want an attribute name", quoteByte(c))
		}
	}
	attr, ok := lookupAttribute(name)
	if !ok {
		return term{}, p.errAt(start, "unknown attribute %q; want one of %s", name, attributeList)
	}

	p.skipSpace()
	t := term{attr: attr}
	switch {
	case p.eof() || p.peek() == '&' || p.peek() == '|':
		return term{}, p.errAt(p.pos, "term %q has no operator; want %s=value or %s!=value", name, name, name)
	case p.peek() == '=':
		p.pos++
	case strings.HasPrefix(p.q[p.pos:], "!="):
		t.negate = true
		p.pos += 2
	default:
		return term{}, p.errAt(p.pos, "unexpected %s after attribute %q; want = or !=", quoteByte(p.peek()), name)
	}
	op := "="
	if t.negate {
		op = "!="
	}

	for {
		p.skipSpace()
		vstart := p.pos
		for !p.eof() && isValueByte(p.peek()) {
			p.pos++
		}
		v := p.q[vstart:p.pos]
		if v == "" {
			after := op
			if p.prevSignificant() == ',' {
				after = ","
			}
			switch {
			case p.eof() || p.peek() == '&' || p.peek() == '|':
				return term{}, p.errAt(p.pos, "missing value after %s", after)
			case p.peek() == ',':
				return term{}, p.errAt(p.pos, "empty value before ,")
			default:
				return term{}, p.errAt(p.pos, "unexpected %s in value of %q", quoteByte(p.peek()), name)
			}
		}
		if attr == attrHasExternalDependencies && v != "true" && v != "false" {
			return term{}, p.errAt(vstart, "%s takes true or false, got %q", name, v)
		}
		if !slices.Contains(t.values, v) {
			t.values = append(t.values, v)
		}
		p.skipSpace()
		if !p.eof() && p.peek() == ',' {
			p.pos++
			continue
		}
		break
	}
	if !p.eof() && p.peek() != '&' && p.peek() != '|' {
		return term{}, p.errAt(p.pos, "unexpected %s after value; join values with , terms with & and alternatives with |", quoteByte(p.peek()))
	}
	return t, nil
}

// operatorAt names the operator starting at offset i for error messages.
func operatorAt(q string, i int) string {
	if strings.HasPrefix(q[i:], "!=") {
		return "!="
	}
	return q[i : i+1]
}

func quoteByte(c byte) string {
	if c >= 0x21 && c <= 0x7e {
		return fmt.Sprintf("%q", string(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// isValueByte reports whether c may appear in a value: printable ASCII except
// the query's own punctuation, so that String's output parses back.
func isValueByte(c byte) bool {
	return c > ' ' && c < 0x7f && strings.IndexByte("|&,=!*", c) < 0
}
