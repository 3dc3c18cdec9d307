package bbmtest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/ferryhq/ferry/bbm"
)

// Table describes a table of the fake Catalog.
type Table struct {
	// Schema defaults to "public", which is also where unqualified names
	// are looked up.
	Schema string
	Name   string
	// Columns maps column names to types as format_type spells them
	// ("bigint", "integer", "text", "uuid", ...). Integer types order
	// numerically, every other type as strings.
	Columns map[string]string
	// Nullable lists the columns that may be NULL (the others are NOT
	// NULL); a nullable key column is refused, as PostgresCatalog does.
	Nullable []string
	// Keys are the table's keys, one value per key column, in any order.
	// When nil, the table's keys are the integers MinKey..MaxKey of a
	// single key column (no rows when Empty).
	Keys   []bbm.Key
	MinKey int64
	MaxKey int64
	Empty  bool
	// NullIndexes maps a column to the key columns of a partial index
	// WHERE column IS NULL, enabling bbm.NullKeys on it. The fake treats
	// every row as one whose column is NULL.
	NullIndexes map[string][]string
}

// Catalog is an in-memory bbm.Catalog for tests that run without Postgres.
type Catalog struct {
	mu     sync.Mutex
	tables map[[2]string]*table
}

type table struct {
	Table
	sorted []bbm.Key // Keys in key order, for explicit keys
}

var _ bbm.Catalog = (*Catalog)(nil)

// NewCatalog returns a Catalog with the given tables.
func NewCatalog(tables ...Table) *Catalog {
	c := &Catalog{tables: map[[2]string]*table{}}
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
	tb := &table{Table: t}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tables[[2]string{t.Schema, t.Name}] = tb
}

// DropTable removes a table.
func (c *Catalog) DropTable(schema, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.tables, [2]string{schema, name})
}

var integerTypes = map[string]bool{"smallint": true, "integer": true, "bigint": true}

func (c *Catalog) lookup(schema, name string) (*table, bool) {
	if schema == "" {
		schema = "public"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tables[[2]string{schema, name}]
	return t, ok
}

// Describe implements bbm.Catalog.
func (c *Catalog) Describe(ctx context.Context, name bbm.TableName, strategy bbm.Strategy, column string, key []string) (bbm.Target, error) {
	if err := ctx.Err(); err != nil {
		return bbm.Target{}, err
	}
	t, ok := c.lookup(name.Schema, name.Name)
	if !ok {
		return bbm.Target{}, fmt.Errorf("%w: table %s does not exist", bbm.ErrInvalidTable, name)
	}
	if _, ok := t.Columns[column]; !ok {
		return bbm.Target{}, fmt.Errorf("%w: column %q does not exist on %s", bbm.ErrInvalidColumn, column, name)
	}
	out := bbm.Target{Schema: t.Schema, Table: t.Name, Column: column, Strategy: strategy}
	switch strategy {
	case bbm.Keyset:
		if len(key) == 0 {
			key = []string{column}
		}
	case bbm.NullKeys:
		if key, ok = t.NullIndexes[column]; !ok {
			return bbm.Target{}, fmt.Errorf("%w: %s has no partial index WHERE %q IS NULL", bbm.ErrMissingNullIndex, name, column)
		}
	default:
		return bbm.Target{}, fmt.Errorf("%w: %q", bbm.ErrInvalidStrategy, strategy)
	}
	for _, k := range key {
		typ, ok := t.Columns[k]
		if !ok {
			return bbm.Target{}, fmt.Errorf("%w: column %q does not exist on %s", bbm.ErrInvalidColumn, k, name)
		}
		if slices.Contains(t.Nullable, k) {
			return bbm.Target{}, fmt.Errorf("%w: %q may be NULL", bbm.ErrNullableKey, k)
		}
		out.KeyColumns = append(out.KeyColumns, k)
		out.KeyTypes = append(out.KeyTypes, typ)
	}
	if t.Keys == nil && len(out.KeyColumns) != 1 {
		return bbm.Target{}, fmt.Errorf("%w: the fake table %s has integer keys MinKey..MaxKey, for one key column", bbm.ErrInvalidColumn, name)
	}
	return out, nil
}

// compare orders two keys by the key types: integers numerically, the rest
// as strings. An integer key that does not parse is an error, as the cast
// would be in Postgres.
func compare(types []string, a, b bbm.Key) (int, error) {
	if len(a) != len(types) || len(b) != len(types) {
		return 0, fmt.Errorf("%w: keys %s and %s for %d key columns", bbm.ErrInvalidRange, a, b, len(types))
	}
	for i, typ := range types {
		var c int
		if integerTypes[typ] {
			x, err1 := strconv.ParseInt(a[i], 10, 64)
			y, err2 := strconv.ParseInt(b[i], 10, 64)
			if err1 != nil || err2 != nil {
				return 0, fmt.Errorf("invalid input syntax for type %s: %q / %q", typ, a[i], b[i])
			}
			c = cmp.Compare(x, y)
		} else {
			c = cmp.Compare(a[i], b[i])
		}
		if c != 0 {
			return c, nil
		}
	}
	return 0, nil
}

// sortedKeys returns the table's explicit keys in key order.
func (c *Catalog) sortedKeys(t *table, types []string) ([]bbm.Key, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.sorted != nil {
		return t.sorted, nil
	}
	for _, k := range t.Keys {
		if _, err := compare(types, k, k); err != nil {
			return nil, err
		}
	}
	sorted := slices.Clone(t.Keys)
	slices.SortFunc(sorted, func(a, b bbm.Key) int { r, _ := compare(types, a, b); return r })
	t.sorted = sorted
	return sorted, nil
}

// keysIn returns the table's explicit keys within [lower, upper], in order.
func (c *Catalog) keysIn(t *table, types []string, lower, upper bbm.Key) ([]bbm.Key, error) {
	sorted, err := c.sortedKeys(t, types)
	if err != nil {
		return nil, err
	}
	if _, err := compare(types, lower, upper); err != nil {
		return nil, err
	}
	var out []bbm.Key
	for _, k := range sorted {
		lo, _ := compare(types, k, lower)
		hi, _ := compare(types, k, upper)
		if lo >= 0 && hi <= 0 {
			out = append(out, k)
		}
	}
	return out, nil
}

func (c *Catalog) target(t bbm.Target) (*table, error) {
	tb, ok := c.lookup(t.Schema, t.Table)
	if !ok {
		return nil, fmt.Errorf("%w: table %s.%s does not exist", bbm.ErrInvalidTable, t.Schema, t.Table)
	}
	return tb, nil
}

// KeyBounds implements bbm.Catalog.
func (c *Catalog) KeyBounds(ctx context.Context, target bbm.Target) (bbm.Key, bbm.Key, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, false, err
	}
	t, err := c.target(target)
	if err != nil {
		return nil, nil, false, err
	}
	if t.Keys == nil {
		if t.Empty {
			return nil, nil, false, nil
		}
		return bbm.IntKey(t.MinKey), bbm.IntKey(t.MaxKey), true, nil
	}
	if len(t.Keys) == 0 {
		return nil, nil, false, nil
	}
	sorted, err := c.sortedKeys(t, target.KeyTypes)
	if err != nil {
		return nil, nil, false, err
	}
	return sorted[0], sorted[len(sorted)-1], true, nil
}

// NextBatch implements bbm.Catalog.
func (c *Catalog) NextBatch(ctx context.Context, target bbm.Target, after, lower, upper bbm.Key, size int) (bbm.Key, bbm.Key, int, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, 0, false, err
	}
	if size <= 0 {
		return nil, nil, 0, false, fmt.Errorf("%w: %d", bbm.ErrInvalidBatchSize, size)
	}
	t, err := c.target(target)
	if err != nil {
		return nil, nil, 0, false, err
	}
	if t.Keys == nil {
		lo, ok1 := lower.Int()
		hi, ok2 := upper.Int()
		if !ok1 || !ok2 {
			return nil, nil, 0, false, fmt.Errorf("%w: integer bounds %s, %s", bbm.ErrInvalidRange, lower, upper)
		}
		if after != nil {
			a, ok := after.Int()
			if !ok {
				return nil, nil, 0, false, fmt.Errorf("%w: integer key %s", bbm.ErrInvalidRange, after)
			}
			lo = max(lo, a+1)
		}
		if t.Empty {
			return nil, nil, 0, false, nil
		}
		lo, hi = max(lo, t.MinKey), min(hi, t.MaxKey)
		if lo > hi {
			return nil, nil, 0, false, nil
		}
		end := hi
		if hi-lo >= int64(size) {
			end = lo + int64(size) - 1
		}
		up := end
		if end == hi {
			up, _ = upper.Int() // the last range ends at the upper bound
		}
		return bbm.IntKey(lo), bbm.IntKey(up), int(end - lo + 1), true, nil
	}
	keys, err := c.keysIn(t, target.KeyTypes, lower, upper)
	if err != nil {
		return nil, nil, 0, false, err
	}
	if after != nil {
		i := 0
		for i < len(keys) {
			r, err := compare(target.KeyTypes, keys[i], after)
			if err != nil {
				return nil, nil, 0, false, err
			}
			if r > 0 {
				break
			}
			i++
		}
		keys = keys[i:]
	}
	if len(keys) == 0 {
		return nil, nil, 0, false, nil
	}
	if len(keys) > size {
		return keys[0], keys[size-1], size, true, nil
	}
	return keys[0], upper, len(keys), true, nil
}

// EstimateRows implements bbm.Catalog: the exact count.
func (c *Catalog) EstimateRows(ctx context.Context, target bbm.Target, lower, upper bbm.Key) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t, err := c.target(target)
	if err != nil {
		return 0, err
	}
	if t.Keys == nil {
		lo, _ := lower.Int()
		hi, _ := upper.Int()
		lo, hi = max(lo, t.MinKey), min(hi, t.MaxKey)
		if t.Empty || lo > hi {
			return 0, nil
		}
		return hi - lo + 1, nil
	}
	keys, err := c.keysIn(t, target.KeyTypes, lower, upper)
	return int64(len(keys)), err
}

// Compare implements bbm.Catalog.
func (c *Catalog) Compare(ctx context.Context, target bbm.Target, a, b bbm.Key) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return compare(target.KeyTypes, a, b)
}
