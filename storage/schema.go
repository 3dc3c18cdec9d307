package storage

import (
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// WithSchema returns a Handle on h's database whose Ferry tables live in
// the PostgreSQL schema schema instead of the first schema of the
// search_path. Migrate creates them there, and every Ferry package using
// the Handle qualifies its table names with it (see Table); nothing is
// changed in the session (no SET search_path), so it works through
// PgBouncer, and the host's own queries on the Handle are unaffected.
//
// A *DB takes its schema from Config.Schema instead (Wrap inherits the
// primary handle's); WithSchema refuses one.
func WithSchema(h Handle, schema string) (Handle, error) {
	switch h.(type) {
	case nil:
		return nil, fmt.Errorf("%w: WithSchema on a nil Handle", ErrConfig)
	case *DB:
		return nil, fmt.Errorf("%w: a *storage.DB takes its schema from Config.Schema", ErrConfig)
	}
	if err := checkIdentifier("schema", schema); err != nil {
		return nil, err
	}
	if s, ok := h.(schemaHandle); ok {
		h = s.Handle
	}
	return schemaHandle{Handle: h, name: schema}, nil
}

// SchemaOf returns the schema of h's Ferry tables, or "" when they are
// found through the search_path.
func SchemaOf(h Handle) string {
	if h == nil {
		return ""
	}
	return h.schema()
}

// Table returns the quoted, schema-qualified SQL name of Ferry's table name
// on h, e.g. "ferry"."ferry_leases", or just "ferry_leases" when h has no
// schema. Ferry's packages build their SQL with it; a host's SQL that
// reads Ferry's tables can too.
func Table(h Handle, name string) string { return TableIn(SchemaOf(h), name) }

// TableIn is Table for a schema given by name ("" for the search_path's).
func TableIn(schema, name string) string {
	if schema != "" {
		return pgx.Identifier{schema, name}.Sanitize()
	}
	return pgx.Identifier{name}.Sanitize()
}

// checkIdentifier refuses names PostgreSQL cannot store as an identifier.
func checkIdentifier(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: %s is empty", ErrConfig, what)
	case len(name) > 63:
		return fmt.Errorf("%w: %s %q is longer than PostgreSQL's 63 bytes", ErrConfig, what, name)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrConfig, what, name)
	}
	for _, r := range name {
		if r == 0 {
			return fmt.Errorf("%w: %s %q contains a NUL byte", ErrConfig, what, name)
		}
	}
	return nil
}

// schemaHandle is a Handle whose Ferry tables live in a schema.
type schemaHandle struct {
	Handle
	name string
}

func (h schemaHandle) schema() string { return h.name }
