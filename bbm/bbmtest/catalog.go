package bbmtest

import (
	"context"
	"fmt"
	"sync"

	"github.com/ferryhq/ferry/bbm"
)

// Table describes a table of the fake Catalog.
type Table struct {
	// Schema defaults to "public", which is also where unqualified names
	// are looked up.
	Schema string
	Name   string
	// Columns maps column names to types as information_schema spells
	// them ("bigint", "integer", "text", ...).
	Columns map[string]string
	// MinKey and MaxKey are what KeyBounds reports; Empty reports no rows.
	MinKey int64
	MaxKey int64
	Empty  bool
	// NullIndexes maps a column to the key column of a partial index
	// WHERE column IS NULL, enabling bbm.NullKeys on it. The fake treats
	// every key as a row whose column is NULL.
	NullIndexes map[string]string
}

// Catalog is an in-memory bbm.Catalog for tests that run without Postgres.
type Catalog struct {
	mu     sync.Mutex
	tables map[[2]string]Table
}

var _ bbm.Catalog = (*Catalog)(nil)

// NewCatalog returns a Catalog with the given tables.
func NewCatalog(tables ...Table) *Catalog {
	c := &Catalog{tables: map[[2]string]Table{}}
	for _, t := range tables {
		c.AddTable(t)
	}
	return c
}

// AddTable adds or replaces a table.
func (c *Catalog) AddTable(t Table) {
	if t.Schema == "" {
		t.Schema = "public"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tables[[2]string{t.Schema, t.Name}] = t
}

// DropTable removes a table.
func (c *Catalog) DropTable(schema, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.tables, [2]string{schema, name})
}

var integerTypes = map[string]bool{"smallint": true, "integer": true, "bigint": true}

// Describe implements bbm.Catalog.
func (c *Catalog) Describe(ctx context.Context, name bbm.TableName, column string, strategy bbm.Strategy) (bbm.Target, error) {
	if err := ctx.Err(); err != nil {
		return bbm.Target{}, err
	}
	schema := name.Schema
	if schema == "" {
		schema = "public"
	}
	c.mu.Lock()
	t, ok := c.tables[[2]string{schema, name.Name}]
	c.mu.Unlock()
	if !ok {
		return bbm.Target{}, fmt.Errorf("%w: table %s does not exist", bbm.ErrInvalidTable, name)
	}
	typ, ok := t.Columns[column]
	if !ok {
		return bbm.Target{}, fmt.Errorf("%w: column %q does not exist on %s", bbm.ErrInvalidColumn, column, name)
	}
	out := bbm.Target{Schema: t.Schema, Table: t.Name, Column: column, Strategy: strategy}
	switch strategy {
	case bbm.IntegerRange:
		if !integerTypes[typ] {
			return bbm.Target{}, fmt.Errorf("%w: %q is %s, not an integer", bbm.ErrInvalidColumn, column, typ)
		}
		out.KeyColumn = column
	case bbm.NullKeys:
		key, ok := t.NullIndexes[column]
		if !ok {
			return bbm.Target{}, fmt.Errorf("%w: %s has no partial index WHERE %q IS NULL", bbm.ErrMissingNullIndex, name, column)
		}
		out.KeyColumn = key
	default:
		return bbm.Target{}, fmt.Errorf("%w: %q", bbm.ErrInvalidStrategy, strategy)
	}
	if !t.Empty {
		out.TupleEstimate = t.MaxKey - t.MinKey + 1
	}
	return out, nil
}

// KeyBounds implements bbm.Catalog.
func (c *Catalog) KeyBounds(ctx context.Context, target bbm.Target) (int64, int64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, false, err
	}
	c.mu.Lock()
	t, ok := c.tables[[2]string{target.Schema, target.Table}]
	c.mu.Unlock()
	if !ok {
		return 0, 0, false, fmt.Errorf("%w: table %s.%s does not exist", bbm.ErrInvalidTable, target.Schema, target.Table)
	}
	if t.Empty {
		return 0, 0, false, nil
	}
	return t.MinKey, t.MaxKey, true, nil
}

// NextNullBatch implements bbm.Catalog: every key in [from, to] counts as
// a NULL row.
func (c *Catalog) NextNullBatch(ctx context.Context, target bbm.Target, from, to int64, size int) (int64, int64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, false, err
	}
	if from > to || size <= 0 {
		return 0, 0, false, nil
	}
	end := to
	if to-from >= int64(size) {
		end = from + int64(size) - 1
	}
	return from, end, true, nil
}
