package enqueuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ferryhq/ferry/storage"
)

// PostgresOptions tunes NewPostgresStore. The zero value is ready to use.
type PostgresOptions struct {
	// Clock gives the time recorded when a Change or NewRepository has
	// none. Default time.Now.
	Clock func() time.Time
	// Logger receives warnings that do not fail an operation. Default:
	// slog.Default().
	Logger *slog.Logger
}

// PostgresStore is the Store on Ferry's schema (storage.Migrate creates the
// table ferry_enqueuer_repositories). Writes go to the primary and are
// recorded for the repository's path, so this process reads its own writes.
// Reads are routed by storage.DB.Read: a replica may serve them unless the
// context comes from storage.UsePrimary. The Enqueuer and the notification
// Handler always pass such a context, because another process (the worker
// that started an import) may have changed the state a moment ago.
type PostgresStore struct {
	db     *storage.DB
	table  string // repositoriesTable, quoted and qualified with db's schema
	clock  func() time.Time
	logger *slog.Logger
}

var _ Store = (*PostgresStore)(nil)

// NewPostgresStore returns a Store on db: storage.FromPool, storage.FromSQL,
// or a *storage.DB, whose replicas then serve the reads it routes.
func NewPostgresStore(db storage.Handle, opts PostgresOptions) (*PostgresStore, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: NewPostgresStore needs a database handle", ErrConfig)
	}
	routed, ok := db.(*storage.DB)
	if !ok {
		var err error
		if routed, err = storage.Wrap(db); err != nil { // no replicas: everything on db
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &PostgresStore{db: routed, table: storage.Table(routed, repositoriesTable), clock: opts.Clock, logger: opts.Logger}, nil
}

// repositoriesTable is the table of PostgresStore (storage/migrations
// 0004 and 0007): the one place that names it.
const repositoriesTable = "ferry_enqueuer_repositories"

const repoColumns = `id, path, state, tag_count, priority, retry_count, skip_reason, abort_reason, version,
	created_at, updated_at, state_changed_at, pre_importing_at, pre_import_done_at,
	importing_at, import_done_at, aborted_at, skipped_at, defer_reason, defer_key, deferred_at`

func scanRepository(row pgx.Row) (Repository, error) {
	var r Repository
	var state string
	var pre, preDone, imp, impDone, aborted, skipped, deferred *time.Time
	err := row.Scan(&r.ID, &r.Path, &state, &r.TagCount, &r.Priority, &r.RetryCount, &r.SkipReason, &r.AbortReason,
		&r.Version, &r.CreatedAt, &r.UpdatedAt, &r.StateChangedAt, &pre, &preDone, &imp, &impDone, &aborted, &skipped,
		&r.DeferReason, &r.DeferKey, &deferred)
	if err != nil {
		return Repository{}, err
	}
	r.State = State(state)
	for _, p := range []struct {
		dst *time.Time
		src *time.Time
	}{{&r.PreImportingAt, pre}, {&r.PreImportDoneAt, preDone}, {&r.ImportingAt, imp},
		{&r.ImportDoneAt, impDone}, {&r.AbortedAt, aborted}, {&r.SkippedAt, skipped}, {&r.DeferredAt, deferred}} {
		if p.src != nil {
			*p.dst = p.src.UTC()
		}
	}
	r.CreatedAt, r.UpdatedAt, r.StateChangedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC(), r.StateChangedAt.UTC()
	return r, nil
}

// nullTime maps the zero time to SQL NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Add implements Store.
func (s *PostgresStore) Add(ctx context.Context, nr NewRepository) (Repository, error) {
	if err := nr.Validate(); err != nil {
		return Repository{}, err
	}
	created := nr.CreatedAt
	if created.IsZero() {
		created = s.clock()
	}
	r, err := scanRepository(s.db.QueryRow(ctx, `
		INSERT INTO `+s.table+` (path, tag_count, priority, created_at, updated_at, state_changed_at)
		VALUES ($1, $2, $3, $4, $4, $4)
		RETURNING `+repoColumns, nr.Path, nr.TagCount, nr.Priority, created))
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return Repository{}, fmt.Errorf("%w: %s", ErrExists, nr.Path)
		}
		return Repository{}, fmt.Errorf("enqueuer: adding %s: %w", nr.Path, err)
	}
	return r, s.recordWrite(ctx, r.Path)
}

// Get implements Store. It reads where storage.DB.Read routes path.
func (s *PostgresStore) Get(ctx context.Context, path string) (Repository, error) {
	r, err := scanRepository(s.db.Read(ctx, path).QueryRow(ctx,
		`SELECT `+repoColumns+` FROM `+s.table+` WHERE path = $1`, path))
	if errors.Is(err, pgx.ErrNoRows) {
		return Repository{}, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	if err != nil {
		return Repository{}, fmt.Errorf("enqueuer: reading %s: %w", path, err)
	}
	return r, nil
}

// Transition implements Store with one conditional UPDATE on the primary.
func (s *PostgresStore) Transition(ctx context.Context, c Change) (Repository, error) {
	to, err := Next(c.From, c.Event)
	if err != nil {
		return Repository{}, err
	}
	at := c.At
	if at.IsZero() {
		at = s.clock()
	}
	// The per-state timestamp to set is chosen by CASE so that the whole
	// compare-and-set is one statement and takes no explicit lock.
	r, err := scanRepository(s.db.QueryRow(ctx, `
		UPDATE `+s.table+` SET
			state = $3,
			version = version + 1,
			updated_at = $4,
			state_changed_at = $4,
			retry_count = CASE $5 WHEN 'retry' THEN retry_count + 1 WHEN 'reset' THEN 0 ELSE retry_count END,
			skip_reason = CASE WHEN $3 = 'import_skipped' THEN $6 WHEN $5 = 'reset' THEN '' ELSE skip_reason END,
			abort_reason = CASE WHEN $3 = 'import_aborted' THEN $6 ELSE abort_reason END,
			pre_importing_at = CASE WHEN $3 = 'pre_importing' THEN $4 ELSE pre_importing_at END,
			pre_import_done_at = CASE WHEN $3 = 'pre_import_done' THEN $4 ELSE pre_import_done_at END,
			importing_at = CASE WHEN $3 = 'importing' THEN $4 ELSE importing_at END,
			import_done_at = CASE WHEN $3 = 'import_done' THEN $4 ELSE import_done_at END,
			aborted_at = CASE WHEN $3 = 'import_aborted' THEN $4 ELSE aborted_at END,
			skipped_at = CASE WHEN $3 = 'import_skipped' THEN $4 ELSE skipped_at END,
			defer_reason = '', defer_key = '', deferred_at = NULL
		WHERE id = $1 AND state = $2
		RETURNING `+repoColumns,
		c.ID, string(c.From), string(to), at, string(c.Event), c.Reason))
	if errors.Is(err, pgx.ErrNoRows) {
		return Repository{}, s.whyNotChanged(ctx, c.ID, c.From)
	}
	if err != nil {
		return Repository{}, fmt.Errorf("enqueuer: %s of repository %d: %w", c.Event, c.ID, err)
	}
	return r, s.recordWrite(ctx, r.Path)
}

// whyNotChanged tells a missing repository from one in another state.
func (s *PostgresStore) whyNotChanged(ctx context.Context, id int64, want State) error {
	r, err := scanRepository(s.db.QueryRow(ctx,
		`SELECT `+repoColumns+` FROM `+s.table+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: id %d", ErrNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("enqueuer: reading repository %d: %w", id, err)
	}
	return stateChanged(r, want)
}

// Revert implements Store.
func (s *PostgresStore) Revert(ctx context.Context, changed, before Repository) (Repository, error) {
	if changed.ID != before.ID {
		return Repository{}, fmt.Errorf("enqueuer: revert of repository %d with a record of %d", changed.ID, before.ID)
	}
	if !before.State.Valid() {
		return Repository{}, fmt.Errorf("enqueuer: revert of repository %d to unknown state %q", before.ID, before.State)
	}
	r, err := scanRepository(s.db.QueryRow(ctx, `
		UPDATE `+s.table+` SET
			state = $3, retry_count = $4, skip_reason = $5, abort_reason = $6,
			version = version + 1, updated_at = $7, state_changed_at = $8,
			pre_importing_at = $9, pre_import_done_at = $10, importing_at = $11,
			import_done_at = $12, aborted_at = $13, skipped_at = $14,
			defer_reason = $15, defer_key = $16, deferred_at = $17
		WHERE id = $1 AND version = $2
		RETURNING `+repoColumns,
		changed.ID, changed.Version, string(before.State), before.RetryCount, before.SkipReason, before.AbortReason,
		s.clock(), before.StateChangedAt, nullTime(before.PreImportingAt), nullTime(before.PreImportDoneAt),
		nullTime(before.ImportingAt), nullTime(before.ImportDoneAt), nullTime(before.AbortedAt), nullTime(before.SkippedAt),
		before.DeferReason, before.DeferKey, nullTime(before.DeferredAt)))
	if errors.Is(err, pgx.ErrNoRows) {
		cur, gerr := scanRepository(s.db.QueryRow(ctx,
			`SELECT `+repoColumns+` FROM `+s.table+` WHERE id = $1`, changed.ID))
		if errors.Is(gerr, pgx.ErrNoRows) {
			return Repository{}, fmt.Errorf("%w: id %d", ErrNotFound, changed.ID)
		}
		if gerr != nil {
			return Repository{}, fmt.Errorf("enqueuer: reading repository %d: %w", changed.ID, gerr)
		}
		return Repository{}, fmt.Errorf("%w: repository %d (%s) is at version %d, not %d",
			ErrStateChanged, cur.ID, cur.Path, cur.Version, changed.Version)
	}
	if err != nil {
		return Repository{}, fmt.Errorf("enqueuer: reverting repository %d: %w", changed.ID, err)
	}
	return r, s.recordWrite(ctx, r.Path)
}

// CountInProgress implements Store. It reads where storage.DB.Read routes
// a read without a sticky key.
func (s *PostgresStore) CountInProgress(ctx context.Context) (int, error) {
	var n int
	err := s.db.Read(ctx, "").QueryRow(ctx, `SELECT count(*) FROM `+s.table+`
		WHERE state IN ('pre_importing', 'pre_import_done', 'importing')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("enqueuer: counting imports in progress: %w", err)
	}
	return n, nil
}

// Count implements Store. It reads where storage.DB.Read routes a read
// without a sticky key, and scans the whole table: count the repositories
// for a dashboard or a forecast, not in a loop.
func (s *PostgresStore) Count(ctx context.Context) (Counts, error) {
	c := Counts{States: make(map[State]int, len(States))}
	for _, st := range States {
		c.States[st] = 0
	}
	rows, err := s.db.Read(ctx, "").Query(ctx, `SELECT state, count(*), count(*) FILTER (WHERE defer_reason <> '')
		FROM `+s.table+` GROUP BY state`)
	if err != nil {
		return c, fmt.Errorf("enqueuer: counting repositories: %w", err)
	}
	var (
		state           string
		n, deferredHere int
	)
	_, err = pgx.ForEachRow(rows, []any{&state, &n, &deferredHere}, func() error {
		c.States[State(state)] = n
		c.Deferred += deferredHere
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("enqueuer: counting repositories: %w", err)
	}
	return c, nil
}

// List implements Store. It reads where storage.DB.Read routes a read
// without a sticky key. Every option is served by an index (see
// storage/migrations/0007_enqueuer_policies.sql).
func (s *PostgresStore) List(ctx context.Context, opts ListOptions) ([]Repository, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	q, args, ok := listQuery(s.table, opts)
	if !ok {
		return nil, nil
	}
	rows, err := s.db.Read(ctx, "").Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("enqueuer: listing %s: %w", opts.State, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Repository, error) { return scanRepository(row) })
	if err != nil {
		return nil, fmt.Errorf("enqueuer: listing %s: %w", opts.State, err)
	}
	return out, nil
}

// listQuery builds List's statement. The state and the deferral condition
// are written as literals (the state is one of States) so that the planner
// can match the partial indexes even with a generic plan. ok is false when
// nothing can match (a path prefix that no valid path has).
func listQuery(table string, opts ListOptions) (q string, args []any, ok bool) {
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	where := []string{"state = '" + string(opts.State) + "'"}
	switch {
	case opts.Ready:
		where = append(where, "defer_reason = ''")
	case opts.Deferred:
		where = append(where, "defer_reason <> ''")
	}
	if !opts.ChangedBefore.IsZero() {
		where = append(where, "state_changed_at < "+arg(opts.ChangedBefore))
	}
	if opts.SkipReason != "" {
		where = append(where, "skip_reason = "+arg(opts.SkipReason))
	}
	if p := opts.PathPrefix; p != "" {
		cond, ok := pathPrefixCond(p, arg)
		if !ok {
			return "", nil, false
		}
		where = append(where, cond)
	}
	keys, err := opts.Order.Keys()
	if err != nil { // Validate has checked it
		return "", nil, false
	}
	order, after := sqlOrder(keys, opts.After, arg)
	if after != "" {
		where = append(where, after)
	}
	q = `SELECT ` + repoColumns + ` FROM ` + table + `
		WHERE ` + strings.Join(where, " AND ") + `
		ORDER BY ` + order + ` LIMIT ` + arg(opts.Limit)
	return q, args, true
}

// pathPrefixCond is the condition on path that keeps the paths starting
// with p, whose values arg binds: a range in byte order, served by the
// (state, path "C") index. ok is false when p is not ASCII: valid paths
// are, so it matches nothing.
func pathPrefixCond(p string, arg func(any) string) (cond string, ok bool) {
	for i := range len(p) {
		if p[i] >= 0x80 {
			return "", false
		}
	}
	cond = `path COLLATE "C" >= ` + arg(p)
	if upper := prefixUpperBound(p); upper != "" {
		cond += ` AND path COLLATE "C" < ` + arg(upper)
	}
	return cond, true
}

// prefixUpperBound is the smallest ASCII string greater than every string
// that starts with p, or "" when there is none.
func prefixUpperBound(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0x7f {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

// Defer implements Store with one conditional UPDATE on the primary.
func (s *PostgresStore) Defer(ctx context.Context, d Deferral) (Repository, error) {
	if err := d.Validate(); err != nil {
		return Repository{}, err
	}
	at := d.At
	if at.IsZero() {
		at = s.clock()
	}
	r, err := scanRepository(s.db.QueryRow(ctx, `
		UPDATE `+s.table+` SET
			defer_reason = $3, defer_key = $4, deferred_at = $5, version = version + 1, updated_at = $5
		WHERE id = $1 AND state = $2
		RETURNING `+repoColumns, d.ID, string(d.From), d.Reason, d.Key, at))
	if errors.Is(err, pgx.ErrNoRows) {
		return Repository{}, s.whyNotChanged(ctx, d.ID, d.From)
	}
	if err != nil {
		return Repository{}, fmt.Errorf("enqueuer: deferring repository %d: %w", d.ID, err)
	}
	return r, s.recordWrite(ctx, r.Path)
}

// reconsiderBatch bounds the rows one statement of Reconsider changes, so
// that clearing a million deferrals does not hold a million row locks in
// one transaction.
const reconsiderBatch = 5000

// Reconsider implements Store, in batches of reconsiderBatch rows. Each
// batch finds the deferrals of other keys by two range scans of the
// deferred index (keys below and above keep).
func (s *PostgresStore) Reconsider(ctx context.Context, keep string) (int, error) {
	total := 0
	for {
		tag, err := s.db.Exec(ctx, `
			UPDATE `+s.table+` SET
				defer_reason = '', defer_key = '', deferred_at = NULL, version = version + 1, updated_at = $3
			WHERE id IN (
				(SELECT id FROM `+s.table+` WHERE defer_reason <> '' AND defer_key < $1 LIMIT $2)
				UNION ALL
				(SELECT id FROM `+s.table+` WHERE defer_reason <> '' AND defer_key > $1 LIMIT $2)
			)`, keep, reconsiderBatch, s.clock())
		if err != nil {
			return total, fmt.Errorf("enqueuer: reconsidering deferred repositories: %w", err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n == 0 {
			return total, nil
		}
	}
}

// SetPriority implements Store: one UPDATE for a path; for a prefix, in
// batches of reconsiderBatch rows found by range scans of the (state, path)
// index, so that a namespace of a million repositories does not hold a
// million row locks in one transaction. The batch's ids are an array, so
// that the rows are found by primary key (with IN the planner joined a
// sequential scan of the table: 1.3 s instead of 0.7 s per batch of 5,000
// among a million rows).
func (s *PostgresStore) SetPriority(ctx context.Context, p PriorityChange) (int, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	if p.Path != "" {
		tag, err := s.db.Exec(ctx, `UPDATE `+s.table+` SET priority = $2 WHERE path = $1 AND priority <> $2`, p.Path, p.Priority)
		if err != nil {
			return 0, fmt.Errorf("enqueuer: setting the priority of %s: %w", p.Path, err)
		}
		if tag.RowsAffected() == 1 {
			return 1, s.recordWrite(ctx, p.Path)
		}
		var exists bool
		if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT FROM `+s.table+` WHERE path = $1)`, p.Path).Scan(&exists); err != nil {
			return 0, fmt.Errorf("enqueuer: setting the priority of %s: %w", p.Path, err)
		}
		if !exists {
			return 0, fmt.Errorf("%w: %s", ErrNotFound, p.Path)
		}
		return 0, nil
	}
	args := []any{p.Priority, reconsiderBatch}
	inPrefix, ok := pathPrefixCond(p.PathPrefix, func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	})
	if !ok {
		return 0, nil
	}
	q := `
		UPDATE ` + s.table + ` SET priority = $1
		WHERE id = ANY(ARRAY(SELECT id FROM ` + s.table + `
			WHERE state IN (` + allStates() + `) AND ` + inPrefix + ` AND priority <> $1 LIMIT $2))`
	total := 0
	for {
		tag, err := s.db.Exec(ctx, q, args...)
		if err != nil {
			return total, fmt.Errorf("enqueuer: setting the priority of %s*: %w", p.PathPrefix, err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n == 0 {
			return total, nil
		}
	}
}

// allStates lists every state as SQL literals, so that a condition on the
// path alone can use the (state, path) index.
func allStates() string {
	q := make([]string, len(States))
	for i, st := range States {
		q[i] = "'" + string(st) + "'"
	}
	return strings.Join(q, ", ")
}

// LastStarted implements Store (one index probe).
func (s *PostgresStore) LastStarted(ctx context.Context) (time.Time, error) {
	var last *time.Time
	err := s.db.Read(ctx, "").QueryRow(ctx, `SELECT max(pre_importing_at) FROM `+s.table).Scan(&last)
	if err != nil {
		return time.Time{}, fmt.Errorf("enqueuer: reading the last start: %w", err)
	}
	if last == nil {
		return time.Time{}, nil
	}
	return last.UTC(), nil
}

// recordWrite makes later reads of path in this process see the write,
// even on a replica. The write has committed by then, so a failure here
// must not be reported as a failed write: it is logged, and routed reads of
// path that do not use the primary may see the old row until replicas
// catch up.
func (s *PostgresStore) recordWrite(ctx context.Context, path string) error {
	if err := s.db.RecordWrite(ctx, path); err != nil {
		s.logger.WarnContext(ctx, "enqueuer: write committed but its WAL position was not recorded",
			"container_repository_path", path, "error", err)
	}
	return nil
}
