package bbm

import (
	"context"
	"encoding/json"
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
	// Column is, for Keyset, the key column (when Key is empty); for
	// NullKeys, the column being filled. Plain or double-quoted.
	Column string
	// Key names the key columns for Keyset, in the order of an index on
	// them: one column of any orderable type, or several for a composite
	// key, such as {"repository_id", "digest"}. Default: {Column}. Key
	// columns must be NOT NULL (ErrNullableKey otherwise). NullKeys
	// ignores it and takes the key from the partial index.
	Key []string
	// Work is the Name of a Work registered on the worker.
	Work string
	// From and To bound the keys, both inclusive, one value per key column
	// in PostgreSQL's text form (IntKey(n) for an integer). nil means the
	// table's smallest (From) or largest (To) key at registration; for
	// NullKeys, among the rows whose column IS NULL. Rows inserted later
	// above To are not processed.
	From Key
	To   Key
	// BatchSize is the number of rows per job (the first job's, with
	// adaptive sizing); it must be positive.
	BatchSize int
	// Strategy is how jobs are cut. Default Keyset.
	Strategy Strategy
	// OnFailure is what happens when a job keeps failing. Default
	// FinishOthers (as GitLab does): every other range runs first, then the
	// migration fails listing the failed ranges.
	OnFailure FailurePolicy
	// Args are arguments for the Work, passed to every batch as
	// Batch.Args: a json.RawMessage or []byte holding JSON, or any value
	// that encoding/json marshals. nil: none.
	Args any
	// Paused registers the migration paused; Resume starts it.
	Paused bool
}

// Register validates d and stores a new migration. It checks that the Work
// is registered, the batch size positive, the table and key columns exist
// in the catalog (key columns NOT NULL; for NullKeys, that a partial index
// supports the batching), the bounds have one value per key column and are
// not reversed, and the arguments are JSON; unset bounds are read from the
// table. A table with no rows in range gives a migration that is finished
// at once. A taken name is ErrDuplicateMigration. The migration records the
// Work's Delivery.
func (a *Admin) Register(ctx context.Context, d Definition) (*Migration, error) {
	e := a.e
	if e.err != nil {
		return nil, e.err
	}
	if !namePattern.MatchString(d.Name) {
		return nil, fmt.Errorf("%w: %q: use 1-200 letters, digits and _.:/-", ErrInvalidName, d.Name)
	}
	if d.Strategy == "" {
		d.Strategy = Keyset
	}
	if !d.Strategy.Valid() {
		return nil, fmt.Errorf("%w: %q (want %s or %s)", ErrInvalidStrategy, d.Strategy, Keyset, NullKeys)
	}
	if d.OnFailure == "" {
		d.OnFailure = FinishOthers
	}
	if !d.OnFailure.Valid() {
		return nil, fmt.Errorf("%w: failure policy %q (want %s or %s)", ErrInvalidName, d.OnFailure, FinishOthers, FailFast)
	}
	work, ok := e.works.get(d.Work)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not registered on this worker (registered: %v)", ErrUnknownWork, d.Work, e.works.names())
	}
	if d.BatchSize <= 0 {
		return nil, fmt.Errorf("%w: %d (must be > 0)", ErrInvalidBatchSize, d.BatchSize)
	}
	args, err := marshalArgs(d.Args)
	if err != nil {
		return nil, err
	}
	table, err := ParseTableName(d.Table)
	if err != nil {
		return nil, err
	}
	column, err := ParseColumnName(d.Column)
	if err != nil {
		return nil, err
	}
	var key []string
	if d.Strategy == Keyset {
		for _, k := range d.Key {
			c, err := ParseColumnName(k)
			if err != nil {
				return nil, err
			}
			key = append(key, c)
		}
	}
	t, err := e.catalog.Describe(ctx, table, d.Strategy, column, key)
	if err != nil {
		return nil, err
	}
	for _, b := range []Key{d.From, d.To} {
		if b != nil && len(b) != len(t.KeyColumns) {
			return nil, fmt.Errorf("%w: bound %s has %d values for the %d key columns %v", ErrInvalidRange, b, len(b), len(t.KeyColumns), t.KeyColumns)
		}
	}
	m := &Migration{Name: d.Name, Schema: t.Schema, Table: t.Table, Column: t.Column, KeyColumns: t.KeyColumns,
		KeyTypes: t.KeyTypes, Lower: d.From, Upper: d.To, BatchSize: d.BatchSize, Status: StatusActive,
		WorkName: d.Work, Delivery: DeliveryOf(work), Strategy: d.Strategy, OnFailure: d.OnFailure, Args: args}
	if d.Paused {
		m.Status = StatusPaused
	}
	if m.Lower == nil || m.Upper == nil {
		lo, hi, ok, err := e.catalog.KeyBounds(ctx, t)
		if err != nil {
			return nil, err
		}
		switch {
		case !ok && m.Lower == nil && m.Upper == nil:
			// Nothing to do: record it as done rather than refuse it.
			m.Lower, m.Upper = make(Key, len(t.KeyColumns)), make(Key, len(t.KeyColumns))
			m.Status = StatusFinished
		case !ok:
			if m.Lower == nil {
				m.Lower = m.Upper
			} else {
				m.Upper = m.Lower
			}
		default:
			if m.Lower == nil {
				m.Lower = lo
			}
			if m.Upper == nil {
				m.Upper = hi
			}
		}
	}
	if m.Status != StatusFinished {
		// The database compares the bounds, as the key's type orders
		// them; a bound that is not a value of that type fails here.
		c, err := e.catalog.Compare(ctx, t, m.Lower, m.Upper)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidRange, err)
		}
		if c > 0 {
			return nil, fmt.Errorf("%w: from %s > to %s", ErrInvalidRange, m.Lower, m.Upper)
		}
		if m.EstimatedRows, err = e.catalog.EstimateRows(ctx, t, m.Lower, m.Upper); err != nil {
			return nil, err
		}
	}
	if err := e.store.CreateMigration(ctx, m); err != nil {
		return nil, err
	}
	e.log.InfoContext(ctx, "migration registered", "migration", m.Name, "migration_id", m.ID,
		"table", m.QualifiedTable(), "key", m.KeyColumns, "work", m.WorkName, "delivery", m.Delivery,
		"from", m.Lower, "to", m.Upper, "batch_size", m.BatchSize, "strategy", m.Strategy,
		"on_failure", m.OnFailure, "status", m.Status)
	return m, nil
}

// marshalArgs turns Definition.Args into JSON.
func marshalArgs(v any) (json.RawMessage, error) {
	var raw []byte
	switch a := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		raw = a
	case []byte:
		raw = a
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidArgs, err)
		}
		raw = b
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: not valid JSON: %.64q", ErrInvalidArgs, raw)
	}
	return json.RawMessage(raw), nil
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

// Jobs returns a page of the named migration's jobs in key order, as opts
// selects (JobListOptions: a status, the last job ID of the previous page,
// a limit). An unknown name is ErrMigrationNotFound; bad options are
// ErrInvalidListing.
func (a *Admin) Jobs(ctx context.Context, name string, opts JobListOptions) ([]*Job, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	m, err := a.get(ctx, name)
	if err != nil {
		return nil, err
	}
	return a.e.store.ListJobs(ctx, m.ID, opts)
}
