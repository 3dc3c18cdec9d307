package importserver

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/storage"
)

// The tables of PostgresStore (storage.Migrate creates them). Every query
// names them through postgresQueries, so that a schema can be put in front
// of them in one place.
const (
	ImportsTable       = "ferry_importserver_imports"
	NotificationsTable = "ferry_importserver_notifications"
)

// PostgresOptions tunes NewPostgresStore. The zero value is ready to use.
type PostgresOptions struct{}

// PostgresStore is the Store on Ferry's schema. Every read and write goes
// to the primary: import state is read right after another instance may
// have changed it. It needs no session state (one statement or one
// transaction per call, a transaction-scoped advisory lock for starts), so
// it works through PgBouncer in transaction pooling mode.
type PostgresStore struct {
	db storage.Handle
	q  postgresQueries
}

var _ Store = (*PostgresStore)(nil)

// NewPostgresStore returns a Store on db: storage.FromPool,
// storage.FromSQL, or a *storage.DB (whose primary is used).
func NewPostgresStore(db storage.Handle, _ PostgresOptions) (*PostgresStore, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: NewPostgresStore needs a database", ErrConfig)
	}
	return &PostgresStore{db: db, q: newPostgresQueries(storage.Table(db, ImportsTable), storage.Table(db, NotificationsTable))}, nil
}

// postgresQueries are the store's statements with the table names filled in.
type postgresQueries struct {
	lockKey                                         int64
	get, count, begin, finish, requestCancel, force string
	heartbeat, stale, claim, record, stats, prune   string
}

const importColumns = `path, type, status, detail, run, owner, cancel_requested,
	blobs_copied, blobs_skipped, bytes_copied, manifests, tags,
	started_at, heartbeat_at, finished_at, updated_at`

const notificationColumns = `id, path, run, status, detail, state, attempts, refusals, last_code, last_error,
	created_at, next_attempt_at, delivered_at`

const inProgress = `('pre_import_in_progress', 'import_in_progress')`

// enqueue is the tail of a statement whose CTE "done" returned ended
// imports: it puts their notifications in the outbox in the same
// statement, and returns the imports.
const enqueue = `, queued AS (
		INSERT INTO {notifications} (path, run, status, detail)
		SELECT path, run, status, detail FROM done
	)
	SELECT ` + importColumns + ` FROM done`

func newPostgresQueries(imports, notifications string) postgresQueries {
	h := fnv.New64a()
	h.Write([]byte("ferry-importserver-begin:" + imports))
	r := strings.NewReplacer("{imports}", imports, "{notifications}", notifications)
	return postgresQueries{
		lockKey: int64(h.Sum64()),
		get:     r.Replace(`SELECT ` + importColumns + ` FROM {imports} WHERE path = $1`),
		count:   r.Replace(`SELECT count(*) FROM {imports} WHERE status IN ` + inProgress),
		// The new run supersedes the repository's undelivered outcomes.
		begin: r.Replace(`WITH up AS (INSERT INTO {imports} AS i (path, type, status, owner)
			VALUES ($1, $2, $3, $4)
			ON CONFLICT (path) DO UPDATE SET type = excluded.type, status = excluded.status,
				owner = excluded.owner, run = i.run + 1, detail = '', cancel_requested = false,
				blobs_copied = 0, blobs_skipped = 0, bytes_copied = 0, manifests = 0, tags = 0,
				started_at = now(), heartbeat_at = now(), finished_at = NULL, updated_at = now()
			WHERE i.status = $5 AND i.run = $6
			RETURNING ` + importColumns + `
			), superseded AS (
				UPDATE {notifications} n SET state = 'superseded', locked_by = NULL, lock_token = NULL, locked_until = NULL
				FROM up WHERE n.path = up.path AND n.state = 'pending' AND n.run < up.run
			)
			SELECT ` + importColumns + ` FROM up`),
		finish: r.Replace(`WITH done AS (
				UPDATE {imports} SET status = $3, detail = $4, blobs_copied = $5, blobs_skipped = $6,
					bytes_copied = $7, manifests = $8, tags = $9, cancel_requested = false,
					finished_at = now(), updated_at = now()
				WHERE path = $1 AND run = $2 AND status = $10
				RETURNING ` + importColumns + `
			)` + enqueue),
		requestCancel: r.Replace(`UPDATE {imports} SET cancel_requested = true, updated_at = now()
			WHERE path = $1 AND status IN ` + inProgress + `
			RETURNING ` + importColumns),
		force: r.Replace(`WITH done AS (
				UPDATE {imports} SET status = CASE status WHEN 'pre_import_in_progress' THEN 'pre_import_canceled'
						ELSE 'import_canceled' END,
					detail = $2, cancel_requested = false, finished_at = now(), updated_at = now()
				WHERE path = $1 AND status IN ` + inProgress + `
				RETURNING ` + importColumns + `
			)` + enqueue),
		heartbeat: r.Replace(`UPDATE {imports} AS i SET heartbeat_at = now()
			FROM unnest($2::text[], $3::bigint[]) AS r(path, run)
			WHERE i.path = r.path AND i.run = r.run AND i.owner = $1 AND i.status IN ` + inProgress + `
			RETURNING ` + prefixed("i.", importColumns)),
		stale: r.Replace(`WITH done AS (
				UPDATE {imports} SET
					status = CASE
						WHEN status = 'pre_import_in_progress' AND cancel_requested THEN 'pre_import_canceled'
						WHEN status = 'pre_import_in_progress' THEN 'pre_import_failed'
						WHEN cancel_requested THEN 'import_canceled'
						ELSE 'import_failed' END,
					detail = $3, cancel_requested = false, finished_at = now(), updated_at = now()
				WHERE status IN ` + inProgress + `
					AND (($1::text <> '' AND owner = $1::text) OR ($2::bigint > 0 AND heartbeat_at < now() - $2::bigint * interval '1 microsecond'))
				RETURNING ` + importColumns + `
			)` + enqueue),
		claim: r.Replace(`UPDATE {notifications} AS n SET locked_by = $1, lock_token = $2,
				locked_until = now() + $4::bigint * interval '1 microsecond'
			FROM (
				SELECT o.id FROM {notifications} o
				WHERE o.state = 'pending' AND o.next_attempt_at <= now()
					AND (o.locked_until IS NULL OR o.locked_until < now() OR (o.locked_by = $1 AND o.lock_token <> $2))
					AND NOT EXISTS (SELECT 1 FROM {notifications} p
						WHERE p.state = 'pending' AND p.path = o.path AND p.id < o.id)
				ORDER BY o.next_attempt_at, o.id
				LIMIT $3
				FOR UPDATE SKIP LOCKED
			) c
			WHERE n.id = c.id
			RETURNING ` + prefixed("n.", notificationColumns)),
		record: r.Replace(`UPDATE {notifications} SET attempts = attempts + 1, refusals = refusals + $3::int,
				state = $2::text, last_code = $4, last_error = $5,
				next_attempt_at = now() + $6::bigint * interval '1 microsecond',
				delivered_at = CASE WHEN $2::text = 'delivered' THEN now() END,
				locked_by = NULL, lock_token = NULL, locked_until = NULL
			WHERE id = $1 AND state = 'pending'`),
		stats: r.Replace(`SELECT count(*) FILTER (WHERE state = 'pending'),
				coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending')), 0)::float8,
				count(*) FILTER (WHERE state = 'failed')
			FROM {notifications} WHERE state <> 'delivered'`),
		prune: r.Replace(`DELETE FROM {notifications}
			WHERE (state = 'delivered' AND delivered_at < now() - $1::bigint * interval '1 microsecond')
				OR (state = 'superseded' AND created_at < now() - $1::bigint * interval '1 microsecond')`),
	}
}

// prefixed qualifies a column list with a table alias.
func prefixed(alias, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = alias + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

func micros(d time.Duration) int64 { return d.Microseconds() }

func scanImport(row pgx.Row) (Import, error) {
	var i Import
	var typ, status string
	var finished *time.Time
	err := row.Scan(&i.Path, &typ, &status, &i.Detail, &i.Run, &i.Owner, &i.CancelRequested,
		&i.Counts.BlobsCopied, &i.Counts.BlobsSkipped, &i.Counts.BytesCopied, &i.Counts.Manifests, &i.Counts.Tags,
		&i.StartedAt, &i.HeartbeatAt, &finished, &i.UpdatedAt)
	if err != nil {
		return Import{}, err
	}
	i.Type, i.Status = Type(typ), Status(status)
	if finished != nil {
		i.FinishedAt = finished.UTC()
	}
	i.StartedAt, i.HeartbeatAt, i.UpdatedAt = i.StartedAt.UTC(), i.HeartbeatAt.UTC(), i.UpdatedAt.UTC()
	return i, nil
}

func collectImports(rows pgx.Rows, err error) ([]Import, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Import, error) { return scanImport(row) })
}

// Get implements Store.
func (s *PostgresStore) Get(ctx context.Context, path string) (Import, error) {
	if err := ValidatePath(path); err != nil {
		return Import{}, err
	}
	i, err := scanImport(s.db.QueryRow(ctx, s.q.get, path))
	if errors.Is(err, pgx.ErrNoRows) {
		return Import{}, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	if err != nil {
		return Import{}, fmt.Errorf("importserver: reading the import of %s: %w", path, err)
	}
	return i, nil
}

// Begin implements Store. Starts are serialized by a transaction-scoped
// advisory lock, so that the count of imports in progress cannot be
// overtaken by a concurrent start.
func (s *PostgresStore) Begin(ctx context.Context, req BeginRequest) (Import, error) {
	if err := req.Validate(); err != nil {
		return Import{}, err
	}
	var out Import
	err := storage.InTx(ctx, s.db, func(tx pgx.Tx) error {
		// One round trip: the statements of a batch run in order, each with
		// its own snapshot, so the reads see every start committed before
		// the lock was granted.
		b := &pgx.Batch{}
		b.Queue(`SELECT pg_advisory_xact_lock($1)`, s.q.lockKey)
		b.Queue(s.q.count)
		b.Queue(s.q.get, req.Path)
		res := tx.SendBatch(ctx, b)
		var running int
		var cur *Import
		_, err := res.Exec()
		if err == nil {
			err = res.QueryRow().Scan(&running)
		}
		if err == nil {
			var i Import
			i, err = scanImport(res.QueryRow())
			switch {
			case err == nil:
				cur = &i
			case errors.Is(err, pgx.ErrNoRows):
				err = nil
			}
		}
		if cerr := res.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if reason := CheckBegin(cur, req, running); reason != nil {
			ref := &RefusedError{Reason: reason, Running: running, Current: Import{Path: req.Path}}
			if cur != nil {
				ref.Current = *cur
			}
			return ref
		}
		var was string
		var run int64
		if cur != nil {
			was, run = string(cur.Status), cur.Run
		}
		out, err = scanImport(tx.QueryRow(ctx, s.q.begin, req.Path, string(req.Type), string(req.Type.InProgress()), req.Owner, was, run))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s changed while starting", ErrStateChanged, req.Path)
		}
		return err
	})
	var ref *RefusedError
	switch {
	case errors.As(err, &ref), errors.Is(err, ErrStateChanged):
		return Import{}, err
	case err != nil:
		return Import{}, fmt.Errorf("importserver: starting the %s import of %s: %w", req.Type, req.Path, err)
	}
	return out, nil
}

// Finish implements Store.
func (s *PostgresStore) Finish(ctx context.Context, o Outcome) (Import, error) {
	if err := o.Validate(); err != nil {
		return Import{}, err
	}
	c := o.Counts
	i, err := scanImport(s.db.QueryRow(ctx, s.q.finish, o.Path, o.Run, string(o.Status), ClipDetail(o.Detail),
		c.BlobsCopied, c.BlobsSkipped, c.BytesCopied, c.Manifests, c.Tags, string(o.Status.Type().InProgress())))
	if errors.Is(err, pgx.ErrNoRows) {
		return Import{}, fmt.Errorf("%w: run %d of %s is no longer in progress", ErrStateChanged, o.Run, o.Path)
	}
	if err != nil {
		return Import{}, fmt.Errorf("importserver: recording %s of %s: %w", o.Status, o.Path, err)
	}
	return i, nil
}

// RequestCancel implements Store.
func (s *PostgresStore) RequestCancel(ctx context.Context, path string) (Import, error) {
	return s.cancel(ctx, path, s.q.requestCancel, path)
}

// ForceCancel implements Store.
func (s *PostgresStore) ForceCancel(ctx context.Context, path, detail string) (Import, error) {
	return s.cancel(ctx, path, s.q.force, path, ClipDetail(detail))
}

func (s *PostgresStore) cancel(ctx context.Context, path, query string, args ...any) (Import, error) {
	if err := ValidatePath(path); err != nil {
		return Import{}, err
	}
	i, err := scanImport(s.db.QueryRow(ctx, query, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		cur, gerr := s.Get(ctx, path)
		if gerr != nil {
			return Import{}, gerr
		}
		return Import{}, &RefusedError{Reason: ErrNotInProgress, Current: cur}
	}
	if err != nil {
		return Import{}, fmt.Errorf("importserver: canceling the import of %s: %w", path, err)
	}
	return i, nil
}

// Heartbeat implements Store.
func (s *PostgresStore) Heartbeat(ctx context.Context, owner string, runs []RunRef) ([]Import, error) {
	if len(runs) == 0 {
		return nil, nil
	}
	paths := make([]string, len(runs))
	nums := make([]int64, len(runs))
	for i, r := range runs {
		paths[i], nums[i] = r.Path, r.Run
	}
	out, err := collectImports(s.db.Query(ctx, s.q.heartbeat, owner, paths, nums))
	if err != nil {
		return nil, fmt.Errorf("importserver: heartbeat of %d imports: %w", len(runs), err)
	}
	return out, nil
}

// FailStale implements Store.
func (s *PostgresStore) FailStale(ctx context.Context, req StaleRequest) ([]Import, error) {
	if req.Owner == "" && req.StaleAfter <= 0 {
		return nil, nil
	}
	out, err := collectImports(s.db.Query(ctx, s.q.stale, req.Owner, micros(req.StaleAfter), ClipDetail(req.Detail)))
	if err != nil {
		return nil, fmt.Errorf("importserver: failing stale imports: %w", err)
	}
	return out, nil
}

// ClaimNotifications implements Store.
func (s *PostgresStore) ClaimNotifications(ctx context.Context, req ClaimRequest) ([]Notification, error) {
	if req.Limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.Query(ctx, s.q.claim, req.Owner, req.Token, req.Limit, micros(req.LeaseFor))
	if err != nil {
		return nil, fmt.Errorf("importserver: claiming notifications: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Notification, error) {
		var n Notification
		var status, state string
		var delivered *time.Time
		err := row.Scan(&n.ID, &n.Path, &n.Run, &status, &n.Detail, &state, &n.Attempts, &n.Refusals,
			&n.LastCode, &n.LastError, &n.CreatedAt, &n.NextAttemptAt, &delivered)
		n.Status, n.State = Status(status), NotificationState(state)
		if delivered != nil {
			n.DeliveredAt = delivered.UTC()
		}
		n.CreatedAt, n.NextAttemptAt = n.CreatedAt.UTC(), n.NextAttemptAt.UTC()
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("importserver: claiming notifications: %w", err)
	}
	sortNotifications(out)
	return out, nil
}

// RecordDelivery implements Store.
func (s *PostgresStore) RecordDelivery(ctx context.Context, d Delivery) error {
	state, err := d.state()
	if err != nil {
		return err
	}
	refused := 0
	if d.Refused {
		refused = 1
	}
	_, err = s.db.Exec(ctx, s.q.record, d.ID, string(state), refused, d.Code, ClipDetail(d.Err), micros(max(d.RetryIn, 0)))
	if err != nil {
		return fmt.Errorf("importserver: recording delivery of notification %d: %w", d.ID, err)
	}
	return nil
}

// OutboxStats implements Store.
func (s *PostgresStore) OutboxStats(ctx context.Context) (OutboxStats, error) {
	var st OutboxStats
	var age float64
	if err := s.db.QueryRow(ctx, s.q.stats).Scan(&st.Pending, &age, &st.Failed); err != nil {
		return OutboxStats{}, fmt.Errorf("importserver: outbox stats: %w", err)
	}
	st.OldestPending = time.Duration(age * float64(time.Second))
	return st, nil
}

// PruneDelivered implements Store.
func (s *PostgresStore) PruneDelivered(ctx context.Context, olderThan time.Duration) (int64, error) {
	tag, err := s.db.Exec(ctx, s.q.prune, micros(max(olderThan, 0)))
	if err != nil {
		return 0, fmt.Errorf("importserver: pruning delivered notifications: %w", err)
	}
	return tag.RowsAffected(), nil
}
