package enqueuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	clock  func() time.Time
	logger *slog.Logger
}

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
	return &PostgresStore{db: routed, clock: opts.Clock, logger: opts.Logger}, nil
}

const repoColumns = `id, path, state, tag_count, retry_count, skip_reason, abort_reason, version,
	created_at, updated_at, state_changed_at, pre_importing_at, pre_import_done_at,
	importing_at, import_done_at, aborted_at, skipped_at`

func scanRepository(row pgx.Row) (Repository, error) {
	var r Repository
	var state string
	var pre, preDone, imp, impDone, aborted, skipped *time.Time
	err := row.Scan(&r.ID, &r.Path, &state, &r.TagCount, &r.RetryCount, &r.SkipReason, &r.AbortReason,
		&r.Version, &r.CreatedAt, &r.UpdatedAt, &r.StateChangedAt, &pre, &preDone, &imp, &impDone, &aborted, &skipped)
	if err != nil {
		return Repository{}, err
	}
	r.State = State(state)
	for _, p := range []struct {
		dst *time.Time
		src *time.Time
	}{{&r.PreImportingAt, pre}, {&r.PreImportDoneAt, preDone}, {&r.ImportingAt, imp},
		{&r.ImportDoneAt, impDone}, {&r.AbortedAt, aborted}, {&r.SkippedAt, skipped}} {
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
	if err := ValidatePath(nr.Path); err != nil {
		return Repository{}, err
	}
	if nr.TagCount < 0 {
		return Repository{}, fmt.Errorf("enqueuer: adding %s: negative tag count %d", nr.Path, nr.TagCount)
	}
	created := nr.CreatedAt
	if created.IsZero() {
		created = s.clock()
	}
	r, err := scanRepository(s.db.QueryRow(ctx, `
		INSERT INTO ferry_enqueuer_repositories (path, tag_count, created_at, updated_at, state_changed_at)
		VALUES ($1, $2, $3, $3, $3)
		RETURNING `+repoColumns, nr.Path, nr.TagCount, created))
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
		`SELECT `+repoColumns+` FROM ferry_enqueuer_repositories WHERE path = $1`, path))
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
		UPDATE ferry_enqueuer_repositories SET
			state = $3,
			version = version + 1,
			updated_at = $4,
			state_changed_at = $4,
			retry_count = retry_count + CASE WHEN $5 THEN 1 ELSE 0 END,
			skip_reason = CASE WHEN $3 = 'import_skipped' THEN $6 ELSE skip_reason END,
			abort_reason = CASE WHEN $3 = 'import_aborted' THEN $6 ELSE abort_reason END,
			pre_importing_at = CASE WHEN $3 = 'pre_importing' THEN $4 ELSE pre_importing_at END,
			pre_import_done_at = CASE WHEN $3 = 'pre_import_done' THEN $4 ELSE pre_import_done_at END,
			importing_at = CASE WHEN $3 = 'importing' THEN $4 ELSE importing_at END,
			import_done_at = CASE WHEN $3 = 'import_done' THEN $4 ELSE import_done_at END,
			aborted_at = CASE WHEN $3 = 'import_aborted' THEN $4 ELSE aborted_at END,
			skipped_at = CASE WHEN $3 = 'import_skipped' THEN $4 ELSE skipped_at END
		WHERE id = $1 AND state = $2
		RETURNING `+repoColumns,
		c.ID, string(c.From), string(to), at, c.Event == EventRetry, c.Reason))
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
		`SELECT `+repoColumns+` FROM ferry_enqueuer_repositories WHERE id = $1`, id))
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
		UPDATE ferry_enqueuer_repositories SET
			state = $3, retry_count = $4, skip_reason = $5, abort_reason = $6,
			version = version + 1, updated_at = $7, state_changed_at = $8,
			pre_importing_at = $9, pre_import_done_at = $10, importing_at = $11,
			import_done_at = $12, aborted_at = $13, skipped_at = $14
		WHERE id = $1 AND version = $2
		RETURNING `+repoColumns,
		changed.ID, changed.Version, string(before.State), before.RetryCount, before.SkipReason, before.AbortReason,
		s.clock(), before.StateChangedAt, nullTime(before.PreImportingAt), nullTime(before.PreImportDoneAt),
		nullTime(before.ImportingAt), nullTime(before.ImportDoneAt), nullTime(before.AbortedAt), nullTime(before.SkippedAt)))
	if errors.Is(err, pgx.ErrNoRows) {
		cur, gerr := scanRepository(s.db.QueryRow(ctx,
			`SELECT `+repoColumns+` FROM ferry_enqueuer_repositories WHERE id = $1`, changed.ID))
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
	err := s.db.Read(ctx, "").QueryRow(ctx, `SELECT count(*) FROM ferry_enqueuer_repositories
		WHERE state IN ('pre_importing', 'pre_import_done', 'importing')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("enqueuer: counting imports in progress: %w", err)
	}
	return n, nil
}

// List implements Store. It reads where storage.DB.Read routes a read
// without a sticky key.
func (s *PostgresStore) List(ctx context.Context, opts ListOptions) ([]Repository, error) {
	if !opts.State.Valid() {
		return nil, fmt.Errorf("enqueuer: listing unknown state %q", opts.State)
	}
	if opts.Limit <= 0 {
		return nil, fmt.Errorf("enqueuer: listing %s: limit must be positive, got %d", opts.State, opts.Limit)
	}
	rows, err := s.db.Read(ctx, "").Query(ctx, `SELECT `+repoColumns+` FROM ferry_enqueuer_repositories
		WHERE state = $1 AND ($2::timestamptz IS NULL OR state_changed_at < $2)
		ORDER BY state_changed_at, id
		LIMIT $3`, string(opts.State), nullTime(opts.ChangedBefore), opts.Limit)
	if err != nil {
		return nil, fmt.Errorf("enqueuer: listing %s: %w", opts.State, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Repository, error) { return scanRepository(row) })
	if err != nil {
		return nil, fmt.Errorf("enqueuer: listing %s: %w", opts.State, err)
	}
	return out, nil
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
