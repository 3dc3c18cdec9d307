package bbm

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Key is a value of a migration's key columns, one string per column in
// PostgreSQL's text form (what ::text prints): "42", a uuid, "alice", or
// for a composite key (a, b) two strings. Keys of every type are compared
// by the database, in the order of the key columns' btree index, never as
// strings in Go; a Key is never NULL (key columns must be NOT NULL).
type Key []string

// IntKey is the Key of a single integer column.
func IntKey(n int64) Key { return Key{strconv.FormatInt(n, 10)} }

// Int returns the value of a single-column integer Key.
func (k Key) Int() (int64, bool) {
	if len(k) != 1 {
		return 0, false
	}
	n, err := strconv.ParseInt(k[0], 10, 64)
	return n, err == nil
}

// Equal reports whether k and o are the same key.
func (k Key) Equal(o Key) bool { return slices.Equal(k, o) }

// String is the key as "42" for one column or "(a, b)" for several.
func (k Key) String() string {
	if len(k) == 1 {
		return k[0]
	}
	return "(" + strings.Join(k, ", ") + ")"
}

// keyTypePattern is what a key column's type may look like before it is
// used in a cast: format_type's output for built-in and plain user types
// ("bigint", "character varying(64)", "timestamp with time zone",
// "myschema.my_enum"). Anything else is refused at registration.
var keyTypePattern = regexp.MustCompile(`^[a-z_][a-z0-9_ .]*(\([0-9, ]+\))?(\[\])?$`)

// keyTypeOK reports whether typ can be used in a cast.
func keyTypeOK(typ string) bool { return len(typ) <= 128 && keyTypePattern.MatchString(typ) }

// keyExpr is the key columns as SQL: "id" or ("a", "b").
func keyExpr(cols []string) string {
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = pgx.Identifier{c}.Sanitize()
	}
	if len(quoted) == 1 {
		return quoted[0]
	}
	return "(" + strings.Join(quoted, ", ") + ")"
}

// keyOrder is the key columns for ORDER BY: "a", "b".
func keyOrder(cols []string) string {
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(quoted, ", ")
}

// keyText selects the key columns as text: "a"::text AS bbm_k1, ...
// The aliases matter: ORDER BY "a" would otherwise sort by the output
// column named "a", the text, and "9" > "10".
func keyText(cols []string) string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = fmt.Sprintf("%s::text AS bbm_k%d", pgx.Identifier{c}.Sanitize(), i+1)
	}
	return strings.Join(out, ", ")
}

// keyParams is a row of parameters $n, $n+1, ... cast to the key types,
// for comparison with keyExpr: $1::text::bigint or ($1::text::uuid,
// $2::text::text). The casts keep the comparison typed whatever the
// driver's parameter mode, and leave the key's index usable.
func keyParams(types []string, n int) string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = fmt.Sprintf("$%d::text::%s", n+i, t)
	}
	if len(out) == 1 {
		return out[0]
	}
	return "(" + strings.Join(out, ", ") + ")"
}

// keyArgs are a Key's values as query arguments.
func keyArgs(k Key) []any {
	out := make([]any, len(k))
	for i, v := range k {
		out[i] = v
	}
	return out
}
