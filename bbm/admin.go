package bbm

import (
	"context"
	"fmt"
)

// Admin registers and steers migrations. Get one from a worker's Admin
// method: registration checks Work against that worker.
type Admin struct {
	e *engine
}

// Definition describes a migration to register.
type Definition struct {
	// Name identifies the migration: 1-200 letters, digits and _.:/-.
	Name string
	// Table is table or schema.table, each part a plain identifier
	// (folded to lower case) or a double-quoted one.
	Table string
	// Column is the batching key for IntegerRange (an integer column) or
	// the column being filled for NullKeys. Plain or double-quoted.
	Column string
	// Work is the Name of a Work registered on the worker.
	Work string
	// MinKey and MaxKey bound the keys, both inclusive. 0 means the
	// table's smallest (MinKey) or largest (MaxKey) key at registration;
	// for NullKeys, among the rows whose column IS NULL.
	MinKey int64
	MaxKey int64
	// BatchSize is the number of keys (rows, for NullKeys) per job; it
	// must be positive.
	BatchSize int
	// Strategy is how jobs are cut. Default IntegerRange.
	Strategy Strategy
	// Paused registers the migration paused; Resume starts it.
	Paused bool
}

// Register validates d and stores a new migration. It checks that the Work
// is registered, the batch size is positive, the table and column exist in
// the catalog (and, for NullKeys, that a partial index supports the
// batching), and that the key range is not reversed; unset bounds are read
// from the table. A table with no rows in range gives a migration that is
// finished at once. A taken name is ErrDuplicateMigration.
func (a *Admin) Register(ctx context.Context, d Definition) (*Migration, error) {
	e := a.e
	if e.err != nil {
		return nil, e.err
	}
	if !namePattern.MatchString(d.Name) {
		return nil, fmt.Errorf("%w: %q: use 1-200 letters, digits and _.:/-", ErrInvalidName, d.Name)
	}
	if d.Strategy == "" {
		d.Strategy = IntegerRange
	}
	if !d.Strategy.Valid() {
		return nil, fmt.Errorf("%w: %q (want %s or %s)", ErrInvalidStrategy, d.Strategy, IntegerRange, NullKeys)
	}
	if _, ok := e.works.get(d.Work); !ok {
		return nil, fmt.Errorf("%w: %q is not registered on this worker (registered: %v)", ErrUnknownWork, d.Work, e.works.names())
	}
	if d.BatchSize <= 0 {
		return nil, fmt.Errorf("%w: %d (must be > 0)", ErrInvalidBatchSize, d.BatchSize)
	}
	if d.MaxKey != 0 && d.MinKey > d.MaxKey {
		return nil, fmt.Errorf("%w: min %d > max %d", ErrInvalidRange, d.MinKey, d.MaxKey)
	}
	table, err := ParseTableName(d.Table)
	if err != nil {
		return nil, err
	}
	column, err := ParseColumnName(d.Column)
	if err != nil {
		return nil, err
	}
	t, err := e.catalog.Describe(ctx, table, column, d.Strategy)
	if err != nil {
		return nil, err
	}
	m := &Migration{Name: d.Name, Schema: t.Schema, Table: t.Table, Column: t.Column, KeyColumn: t.KeyColumn,
		MinKey: d.MinKey, MaxKey: d.MaxKey, BatchSize: d.BatchSize, Status: StatusActive, WorkName: d.Work,
		Strategy: d.Strategy, TotalTuples: t.TupleEstimate}
	if d.Paused {
		m.Status = StatusPaused
	}
	if d.MinKey == 0 || d.MaxKey == 0 {
		lo, hi, ok, err := e.catalog.KeyBounds(ctx, t)
		if err != nil {
			return nil, err
		}
		switch {
		case !ok:
			// Nothing to do: record it as done rather than refuse it.
			m.MaxKey = m.MinKey
			m.Status = StatusFinished
		default:
			if d.MinKey == 0 {
				m.MinKey = lo
			}
			if d.MaxKey == 0 {
				m.MaxKey = hi
			}
		}
	}
	if m.MinKey > m.MaxKey {
		return nil, fmt.Errorf("%w: min %d > max %d (the table's keys end at %d)", ErrInvalidRange, m.MinKey, m.MaxKey, m.MaxKey)
	}
	if err := e.store.CreateMigration(ctx, m); err != nil {
		return nil, err
	}
	e.log.InfoContext(ctx, "migration registered", "migration", m.Name, "migration_id", m.ID,
		"table", m.QualifiedTable(), "column", m.Column, "work", m.WorkName, "start", m.MinKey, "end", m.MaxKey,
		"batch_size", m.BatchSize, "strategy", m.Strategy, "status", m.Status)
	return m, nil
}

// Pause stops workers from starting jobs of the migration (a job running
// now finishes). Pausing a paused migration is a no-op; a finished or
// failed one is ErrInvalidTransition.
func (a *Admin) Pause(ctx context.Context, name string) (*Migration, error) {
	return a.move(ctx, name, "paused", StatusChange{To: StatusPaused,
		From: []Status{StatusActive, StatusRunning, StatusPaused}})
}

// Resume makes a paused migration active again. Resuming an active or
// running one is a no-op; a finished or failed one is ErrInvalidTransition
// (see RetryFailed).
func (a *Admin) Resume(ctx context.Context, name string) (*Migration, error) {
	m, err := a.get(ctx, name)
	if err != nil {
		return nil, err
	}
	if m.Status == StatusActive || m.Status == StatusRunning {
		return m, nil
	}
	return a.move(ctx, name, "resumed", StatusChange{To: StatusActive, From: []Status{StatusPaused}})
}

// RetryFailed puts a failed migration back to running with its failed
// jobs' attempts reset; workers retry those jobs first. Fix the cause
// first (register the Work, restore the table, ...).
func (a *Admin) RetryFailed(ctx context.Context, name string) (*Migration, error) {
	m, err := a.get(ctx, name)
	if err != nil {
		return nil, err
	}
	m, err = a.e.store.RetryMigration(ctx, m.ID)
	if err != nil {
		return nil, err
	}
	a.e.log.InfoContext(ctx, "migration retried", "migration", m.Name, "migration_id", m.ID)
	return m, nil
}

func (a *Admin) get(ctx context.Context, name string) (*Migration, error) {
	if a.e.err != nil {
		return nil, a.e.err
	}
	return a.e.store.MigrationByName(ctx, name)
}

func (a *Admin) move(ctx context.Context, name, verb string, c StatusChange) (*Migration, error) {
	m, err := a.get(ctx, name)
	if err != nil {
		return nil, err
	}
	if m, err = a.e.store.SetMigrationStatus(ctx, m.ID, c); err != nil {
		return nil, err
	}
	a.e.log.InfoContext(ctx, "migration "+verb, "migration", m.Name, "migration_id", m.ID)
	return m, nil
}

// Migration returns the named migration.
func (a *Admin) Migration(ctx context.Context, name string) (*Migration, error) {
	return a.get(ctx, name)
}
