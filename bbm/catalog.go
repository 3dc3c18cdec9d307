package bbm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/storage"
)

// Catalog is what registration and batching need to know about target
// tables. PostgresCatalog reads pg_catalog and the tables themselves;
// bbmtest.Catalog is an in-memory fake.
type Catalog interface {
	// Describe resolves table (on the search_path when unqualified) and
	// its key for strategy. Keyset: key names the key columns (each must
	// exist, be NOT NULL and have a btree-orderable type). NullKeys:
	// column is the column being filled, key is ignored, and the key is
	// the columns of a valid partial index WHERE column IS NULL. Errors
	// wrap ErrInvalidTable, ErrInvalidColumn, ErrNullableKey or
	// ErrMissingNullIndex.
	Describe(ctx context.Context, table TableName, strategy Strategy, column string, key []string) (Target, error)
	// KeyBounds returns the smallest and largest key of the rows in scope
	// (for NullKeys, of the rows whose column IS NULL); ok is false when
	// there are none.
	KeyBounds(ctx context.Context, t Target) (lo, hi Key, ok bool, err error)
	// NextBatch returns the next range of the keyset walk: start is the
	// first key in scope after after (from lower when after is nil) and at
	// most upper; end is the size-th key from start, or upper when fewer
	// are left; rows is how many keys [start, end] holds (at most size).
	// ok is false when no key is left.
	NextBatch(ctx context.Context, t Target, after, lower, upper Key, size int) (start, end Key, rows int, ok bool, err error)
	// EstimateRows is the planner's estimate of the rows in scope in
	// [lower, upper].
	EstimateRows(ctx context.Context, t Target, lower, upper Key) (int64, error)
	// Compare compares two keys in the key's order (-1, 0, +1); a value
	// that is not of the key column's type is an error.
	Compare(ctx context.Context, t Target, a, b Key) (int, error)
}

// Target is a resolved table and key.
type Target struct {
	Schema     string
	Table      string
	Column     string
	KeyColumns []string
	KeyTypes   []string
	Strategy   Strategy
}

func (t Target) ident() string { return pgx.Identifier{t.Schema, t.Table}.Sanitize() }

// scope is the condition limiting rows for the strategy ("" or "AND
// column IS NULL").
func (t Target) scope() string {
	if t.Strategy == NullKeys {
		return " AND " + pgx.Identifier{t.Column}.Sanitize() + " IS NULL"
	}
	return ""
}

// PostgresCatalog is the Catalog on a Postgres database.
type PostgresCatalog struct {
	db storage.Handle
}

var _ Catalog = (*PostgresCatalog)(nil)

// NewPostgresCatalog returns a Catalog reading db.
func NewPostgresCatalog(db storage.Handle) *PostgresCatalog { return &PostgresCatalog{db: db} }

// maxKeyColumns bounds composite keys (Postgres indexes have at most 32
// columns).
const maxKeyColumns = 32

// Describe implements Catalog.
func (c *PostgresCatalog) Describe(ctx context.Context, table TableName, strategy Strategy, column string, key []string) (Target, error) {
	ident := pgx.Identifier{table.Name}
	if table.Schema != "" {
		ident = pgx.Identifier{table.Schema, table.Name}
	}
	// to_regclass parses the quoted name as the server would and gives
	// NULL, not an error, when there is no such relation.
	var t Target
	var kind string
	err := c.db.QueryRow(ctx, `SELECT n.nspname, c.relname, c.relkind::text
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = to_regclass($1)`, ident.Sanitize()).Scan(&t.Schema, &t.Table, &kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return Target{}, fmt.Errorf("%w: table %s does not exist", ErrInvalidTable, table)
	}
	if err != nil {
		return Target{}, fmt.Errorf("bbm: looking up table %s: %w", table, err)
	}
	if kind != "r" && kind != "p" {
		return Target{}, fmt.Errorf("%w: %s is not a table (relkind %s)", ErrInvalidTable, table, kind)
	}
	t.Column, t.Strategy = column, strategy
	var typeErr *columnTypeError
	if _, _, err := c.column(ctx, t, column); err != nil && !errors.As(err, &typeErr) {
		return Target{}, err // the filled column may have any type
	}
	switch strategy {
	case Keyset:
		if len(key) == 0 {
			key = []string{column}
		}
	case NullKeys:
		if key, err = c.nullIndexKey(ctx, t); err != nil {
			return Target{}, err
		}
	default:
		return Target{}, fmt.Errorf("%w: %q", ErrInvalidStrategy, strategy)
	}
	if len(key) > maxKeyColumns {
		return Target{}, fmt.Errorf("%w: %d key columns (at most %d)", ErrInvalidColumn, len(key), maxKeyColumns)
	}
	seen := map[string]bool{}
	for _, k := range key {
		if seen[k] {
			return Target{}, fmt.Errorf("%w: key column %s given twice", ErrInvalidColumn, pgx.Identifier{k}.Sanitize())
		}
		seen[k] = true
		typ, notNull, err := c.column(ctx, t, k)
		if err != nil {
			return Target{}, err
		}
		if !notNull {
			return Target{}, fmt.Errorf("%w: %s.%s may be NULL, and a row whose key is NULL would be in no batch; "+
				"make it NOT NULL (ALTER TABLE %s ALTER COLUMN %s SET NOT NULL) or choose another key",
				ErrNullableKey, t.ident(), pgx.Identifier{k}.Sanitize(), t.ident(), pgx.Identifier{k}.Sanitize())
		}
		t.KeyColumns = append(t.KeyColumns, k)
		t.KeyTypes = append(t.KeyTypes, typ)
	}
	return t, nil
}

// column returns a column's type (as format_type prints it, checked to be
// usable in a cast and to have a btree ordering) and whether it is NOT
// NULL.
func (c *PostgresCatalog) column(ctx context.Context, t Target, column string) (string, bool, error) {
	var typ string
	var notNull, orderable bool
	err := c.db.QueryRow(ctx, `SELECT format_type(a.atttypid, a.atttypmod), a.attnotnull,
			EXISTS (SELECT 1 FROM pg_catalog.pg_opclass o JOIN pg_catalog.pg_am am ON am.oid = o.opcmethod
				WHERE am.amname = 'btree' AND o.opcdefault
				  AND (o.opcintype = a.atttypid OR o.opcintype = (SELECT typbasetype FROM pg_catalog.pg_type WHERE oid = a.atttypid)
				       OR (o.opcintype = 'anyenum'::regtype AND (SELECT typtype FROM pg_catalog.pg_type WHERE oid = a.atttypid) = 'e')))
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`,
		t.ident(), column).Scan(&typ, &notNull, &orderable)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, fmt.Errorf("%w: column %s does not exist on %s", ErrInvalidColumn, pgx.Identifier{column}.Sanitize(), t.ident())
	}
	if err != nil {
		return "", false, fmt.Errorf("bbm: looking up column %s: %w", column, err)
	}
	if !orderable || !keyTypeOK(typ) {
		return typ, notNull, &columnTypeError{table: t.ident(), column: column, typ: typ}
	}
	return typ, notNull, nil
}

// columnTypeError is a column whose type cannot be a key. It matters only
// for key columns, so Describe ignores it for the filled column.
type columnTypeError struct{ table, column, typ string }

func (e *columnTypeError) Error() string {
	return fmt.Sprintf("bbm: invalid column: %s.%s has type %s, which cannot be a key (it needs a default btree ordering)",
		e.table, pgx.Identifier{e.column}.Sanitize(), e.typ)
}

func (e *columnTypeError) Unwrap() error { return ErrInvalidColumn }

// nullIndexKey finds a valid partial btree index on t whose predicate is
// exactly "column IS NULL" and returns its key columns.
func (c *PostgresCatalog) nullIndexKey(ctx context.Context, t Target) ([]string, error) {
	rows, err := c.db.Query(ctx, `SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey[0:i.indnkeyatts-1]) WITH ORDINALITY k(attnum, n)
			JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n),
			0 <> ALL (i.indkey[0:i.indnkeyatts-1])
		FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
		JOIN pg_catalog.pg_am am ON am.oid = ic.relam
		WHERE i.indrelid = to_regclass($1) AND i.indisvalid AND i.indisready AND i.indpred IS NOT NULL
		  AND am.amname = 'btree'
		  AND pg_get_expr(i.indpred, i.indrelid) = format('(%I IS NULL)', $2::text)
		ORDER BY i.indexrelid`, t.ident(), t.Column)
	if err != nil {
		return nil, fmt.Errorf("bbm: looking up indexes of %s: %w", t.ident(), err)
	}
	type index struct {
		cols  []string
		plain bool // no expression columns
	}
	idx, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var i index
		return i, r.Scan(&i.cols, &i.plain)
	})
	if err != nil {
		return nil, fmt.Errorf("bbm: looking up indexes of %s: %w", t.ident(), err)
	}
	for _, i := range idx {
		if i.plain && len(i.cols) > 0 {
			return i.cols, nil
		}
	}
	col := pgx.Identifier{t.Column}.Sanitize()
	return nil, fmt.Errorf("%w: %s needs an index like CREATE INDEX ON %s (id) WHERE %s IS NULL "+
		"to find NULL batches without scanning the table", ErrMissingNullIndex, t.ident(), t.ident(), col)
}

// KeyBounds implements Catalog.
func (c *PostgresCatalog) KeyBounds(ctx context.Context, t Target) (Key, Key, bool, error) {
	lo, ok, err := c.edge(ctx, t, "")
	if err != nil || !ok {
		return nil, nil, false, err
	}
	hi, ok, err := c.edge(ctx, t, " DESC")
	if err != nil || !ok {
		return nil, nil, false, err
	}
	return lo, hi, true, nil
}

// edge reads the first key in scope in the given direction.
func (c *PostgresCatalog) edge(ctx context.Context, t Target, dir string) (Key, bool, error) {
	order := make([]string, len(t.KeyColumns))
	for i, k := range t.KeyColumns {
		order[i] = pgx.Identifier{k}.Sanitize() + dir
	}
	sql := `SELECT ` + keyText(t.KeyColumns) + ` FROM ` + t.ident() + ` WHERE true` + t.scope() +
		` ORDER BY ` + strings.Join(order, ", ") + ` LIMIT 1`
	return c.key(ctx, sql, len(t.KeyColumns))
}

// key runs a query returning at most one key.
func (c *PostgresCatalog) key(ctx context.Context, sql string, n int, args ...any) (Key, bool, error) {
	rows, err := c.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, false, rows.Err()
	}
	k := make(Key, n)
	dst := make([]any, n)
	for i := range k {
		dst[i] = &k[i]
	}
	if err := rows.Scan(dst...); err != nil {
		return nil, false, err
	}
	rows.Close()
	return k, true, rows.Err()
}

// NextBatch implements Catalog: two index probes (the first key, and the
// size-th one, which reads size index entries as each_batch's OFFSET does),
// and a count only for the last, short range.
func (c *PostgresCatalog) NextBatch(ctx context.Context, t Target, after, lower, upper Key, size int) (Key, Key, int, bool, error) {
	if size <= 0 {
		return nil, nil, 0, false, fmt.Errorf("%w: %d", ErrInvalidBatchSize, size)
	}
	n := len(t.KeyColumns)
	key, order := keyExpr(t.KeyColumns), keyOrder(t.KeyColumns)
	from, op := lower, ">="
	if after != nil {
		from, op = after, ">"
	}
	fail := func(err error) (Key, Key, int, bool, error) {
		return nil, nil, 0, false, fmt.Errorf("bbm: cutting the next batch of %s: %w", t.ident(), err)
	}
	start, ok, err := c.key(ctx, `SELECT `+keyText(t.KeyColumns)+` FROM `+t.ident()+
		` WHERE `+key+` `+op+` `+keyParams(t.KeyTypes, 1)+` AND `+key+` <= `+keyParams(t.KeyTypes, n+1)+t.scope()+
		` ORDER BY `+order+` LIMIT 1`, n, append(keyArgs(from), keyArgs(upper)...)...)
	if err != nil {
		return fail(err)
	}
	if !ok {
		return nil, nil, 0, false, nil
	}
	rangeArgs := append(keyArgs(start), keyArgs(upper)...)
	inRange := ` FROM ` + t.ident() + ` WHERE ` + key + ` >= ` + keyParams(t.KeyTypes, 1) +
		` AND ` + key + ` <= ` + keyParams(t.KeyTypes, n+1) + t.scope()
	end, ok, err := c.key(ctx, `SELECT `+keyText(t.KeyColumns)+inRange+
		fmt.Sprintf(` ORDER BY %s OFFSET %d LIMIT 1`, order, size-1), n, rangeArgs...)
	if err != nil {
		return fail(err)
	}
	if ok {
		return start, end, size, true, nil
	}
	var rows int
	if err := c.db.QueryRow(ctx, `SELECT count(*)`+inRange, rangeArgs...).Scan(&rows); err != nil {
		return fail(err)
	}
	return start, upper, rows, true, nil
}

// EstimateRows implements Catalog, with the planner's row estimate.
func (c *PostgresCatalog) EstimateRows(ctx context.Context, t Target, lower, upper Key) (int64, error) {
	n := len(t.KeyColumns)
	key := keyExpr(t.KeyColumns)
	var plan []map[string]any
	err := c.db.QueryRow(ctx, `EXPLAIN (FORMAT JSON) SELECT 1 FROM `+t.ident()+` WHERE `+key+` >= `+
		keyParams(t.KeyTypes, 1)+` AND `+key+` <= `+keyParams(t.KeyTypes, n+1)+t.scope(),
		append(keyArgs(lower), keyArgs(upper)...)...).Scan(&plan)
	if err != nil {
		return 0, fmt.Errorf("bbm: estimating the rows of %s: %w", t.ident(), err)
	}
	if len(plan) == 0 {
		return 0, nil
	}
	p, _ := plan[0]["Plan"].(map[string]any)
	rows, _ := p["Plan Rows"].(float64)
	return int64(rows), nil
}

// Compare implements Catalog.
func (c *PostgresCatalog) Compare(ctx context.Context, t Target, a, b Key) (int, error) {
	n := len(t.KeyTypes)
	if len(a) != n || len(b) != n {
		return 0, fmt.Errorf("%w: keys %s and %s for %d key columns", ErrInvalidRange, a, b, n)
	}
	x, y := keyParams(t.KeyTypes, 1), keyParams(t.KeyTypes, n+1)
	var cmp int
	err := c.db.QueryRow(ctx, `SELECT CASE WHEN `+x+` < `+y+` THEN -1 WHEN `+x+` > `+y+` THEN 1 ELSE 0 END`,
		append(keyArgs(a), keyArgs(b)...)...).Scan(&cmp)
	if err != nil {
		return 0, fmt.Errorf("bbm: comparing keys %s and %s of %s: %w", a, b, t.ident(), err)
	}
	return cmp, nil
}
