package bbm

import (
	"fmt"
	"strings"
)

// TableName is a parsed [schema.]table reference. Schema is empty when the
// name was not qualified; the catalog then resolves it on the search_path.
type TableName struct {
	Schema string
	Name   string
}

// String returns the name quoted as SQL would need it.
func (t TableName) String() string {
	if t.Schema == "" {
		return quoteIdent(t.Name)
	}
	return quoteIdent(t.Schema) + "." + quoteIdent(t.Name)
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// maxIdentLen is Postgres's NAMEDATALEN-1: longer names are truncated by
// the server, so they are refused here rather than silently changed.
const maxIdentLen = 63

// ParseTableName parses table or schema.table, where each part is a plain
// identifier (letters, digits, _ and $, not starting with a digit; folded to
// lower case as Postgres does) or a double-quoted identifier ("" for a
// quote). Anything else is an error wrapping ErrInvalidTable: a third part,
// spaces, semicolons, empty parts. The result is only ever used through
// pgx.Identifier, never pasted into SQL.
func ParseTableName(s string) (TableName, error) {
	parts, err := parseIdentList(s)
	if err != nil {
		return TableName{}, fmt.Errorf("%w: %q: %v", ErrInvalidTable, s, err)
	}
	switch len(parts) {
	case 1:
		return TableName{Name: parts[0]}, nil
	case 2:
		return TableName{Schema: parts[0], Name: parts[1]}, nil
	default:
		return TableName{}, fmt.Errorf("%w: %q: want table or schema.table, got %d dotted parts", ErrInvalidTable, s, len(parts))
	}
}

// ParseColumnName parses a single plain or double-quoted identifier, with the
// rules of ParseTableName; errors wrap ErrInvalidColumn.
func ParseColumnName(s string) (string, error) {
	parts, err := parseIdentList(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidColumn, s, err)
	}
	if len(parts) != 1 {
		return "", fmt.Errorf("%w: %q: want a single column name", ErrInvalidColumn, s)
	}
	return parts[0], nil
}

func parseIdentList(s string) ([]string, error) {
	if s == "" {
		return nil, fmt.Errorf("empty name")
	}
	var parts []string
	i := 0
	for {
		part, next, err := parseIdent(s, i)
		if err != nil {
			return nil, err
		}
		parts = append(parts, part)
		if next == len(s) {
			return parts, nil
		}
		if s[next] != '.' {
			return nil, fmt.Errorf("unexpected %q at offset %d", s[next], next)
		}
		i = next + 1
		if i == len(s) {
			return nil, fmt.Errorf("name ends with a dot")
		}
	}
}

// parseIdent reads one identifier starting at s[i] and returns it and the
// offset after it.
func parseIdent(s string, i int) (string, int, error) {
	if s[i] == '"' {
		var b strings.Builder
		j := i + 1
		for {
			k := strings.IndexByte(s[j:], '"')
			if k < 0 {
				return "", 0, fmt.Errorf("unterminated quoted identifier at offset %d", i)
			}
			b.WriteString(s[j : j+k])
			j += k + 1
			if j < len(s) && s[j] == '"' {
				b.WriteByte('"')
				j++
				continue
			}
			break
		}
		id := b.String()
		if id == "" {
			return "", 0, fmt.Errorf("empty quoted identifier at offset %d", i)
		}
		if strings.ContainsRune(id, 0) {
			return "", 0, fmt.Errorf("NUL in identifier")
		}
		if len(id) > maxIdentLen {
			return "", 0, fmt.Errorf("identifier longer than %d bytes", maxIdentLen)
		}
		return id, j, nil
	}
	j := i
	for j < len(s) && isIdentChar(s[j], j == i) {
		j++
	}
	if j == i {
		return "", 0, fmt.Errorf("unexpected %q at offset %d", s[i], i)
	}
	if j-i > maxIdentLen {
		return "", 0, fmt.Errorf("identifier longer than %d bytes", maxIdentLen)
	}
	return strings.ToLower(s[i:j]), j, nil
}

func isIdentChar(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		return true
	case c >= '0' && c <= '9', c == '$':
		return !first
	}
	return false
}
