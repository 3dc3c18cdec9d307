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
	lockKey                                                  int64
	get, count, begin, finish, abandon, requestCancel, force string
	heartbeat, stale, claim, record, stats, prune            string
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
		// The new run supersedes the repository's undelivered outcomes. It
		// starts when the repository's status is one of $6 (or it has no
		// record and $7) and fewer than $5 imports run (0: no limit), the
		// rules of CheckBegin that startable computes; the ON CONFLICT
		// branch checks the status again on the row's latest version.
		begin: r.Replace(`WITH up AS (INSERT INTO {imports} AS i (path, type, status, owner)
			SELECT $1, $2, $3, $4
			WHERE ($5::int = 0 OR (SELECT count(*) FROM {imports} WHERE status IN ` + inProgress + `) < $5::int)
				AND coalesce((SELECT c.status = ANY($6::text[]) FROM {imports} c WHERE c.path = $1), $7::bool)
			ON CONFLICT (path) DO UPDATE SET type = excluded.type, status = excluded.status,
				owner = excluded.owner, run = i.run + 1, detail = '', cancel_requested = false,
				blobs_copied = 0, blobs_skipped = 0, bytes_copied = 0, manifests = 0, tags = 0,
				started_at = now(), heartbeat_at = now(), finished_at = NULL, updated_at = now()
			WHERE i.status = ANY($6::text[])
			RETURNING ` + importColumns + `
			), superseded AS (
				UPDATE {notifications} n SET state = 'superseded', locked_by = NULL, lock_token = NULL, locked_until = NULL
				FROM up WHERE n.path = up.path AND n.state = 'pending' AND n.run < up.run
			)
			SELECT ` + importColumns + ` FROM up`),
		// $11, when not empty, leases the new notification to $11/$12 for
		// $13 microseconds, unless an older one of the repository is
		// pending (that one goes first; ClaimNotifications finds both).
		finish: r.Replace(`WITH done AS (
				UPDATE {imports} SET status = $3, detail = $4, blobs_copied = $5, blobs_skipped = $6,
					bytes_copied = $7, manifests = $8, tags = $9, cancel_requested = false,
					finished_at = now(), updated_at = now()
				WHERE path = $1 AND run = $2 AND status = $10
				RETURNING ` + importColumns + `
			), claim AS (
				SELECT $11::text <> '' AND NOT EXISTS (SELECT 1 FROM {notifications} p
					WHERE p.state = 'pending' AND p.path = $1) AS mine
			), queued AS (
				INSERT INTO {notifications} (path, run, status, detail, locked_by, lock_token, locked_until)
				SELECT path, run, status, detail,
					CASE WHEN mine THEN $11::text END, CASE WHEN mine THEN $12::text END,
					CASE WHEN mine THEN now() + $13::bigint * interval '1 microsecond' END
				FROM done, claim
				RETURNING id, created_at, next_attempt_at, locked_by IS NOT NULL AS claimed
			)
			SELECT ` + prefixed("done.", importColumns) + `, queued.id, queued.created_at, queued.next_attempt_at, queued.claimed
			FROM done, queued`),
		abandon: r.Replace(`DELETE FROM {imports} WHERE path = $1 AND run = $2 AND run = 1 AND status IN ` + inProgress),
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
		record: r.Replace(`UPDATE {notifications} AS n SET attempts = n.attempts + 1, refusals = n.refusals + d.refused,
				state = d.state, last_code = d.code, last_error = d.err,
				next_attempt_at = now() + d.retry * interval '1 microsecond',
				delivered_at = CASE WHEN d.state = 'delivered' THEN now() END,
				locked_by = NULL, lock_token = NULL, locked_until = NULL
			FROM unnest($1::bigint[], $2::text[], $3::int[], $4::int[], $5::text[], $6::bigint[])
				AS d(id, state, refused, code, err, retry)
			WHERE n.id = d.id AND n.state = 'pending'`),
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

// importRow is the scan target of importColumns.
type importRow struct {
	i           Import
	typ, status string
	finished    *time.Time
}

func (r *importRow) fields() []any {
	i := &r.i
	return []any{&i.Path, &r.typ, &r.status, &i.Detail, &i.Run, &i.Owner, &i.CancelRequested,
		&i.Counts.BlobsCopied, &i.Counts.BlobsSkipped, &i.Counts.BytesCopied, &i.Counts.Manifests, &i.Counts.Tags,
		&i.StartedAt, &i.HeartbeatAt, &r.finished, &i.UpdatedAt}
}

func (r *importRow) value() Import {
	i := r.i
	i.Type, i.Status = Type(r.typ), Status(r.status)
	if r.finished != nil {
		i.FinishedAt = r.finished.UTC()
	}
	i.StartedAt, i.HeartbeatAt, i.UpdatedAt = i.StartedAt.UTC(), i.HeartbeatAt.UTC(), i.UpdatedAt.UTC()
	return i
}

func scanImport(row pgx.Row) (Import, error) {
	var r importRow
	if err := row.Scan(r.fields()...); err != nil {
		return Import{}, err
	}
	return r.value(), nil
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

// Begin implements Store in one round trip: a batch outside an explicit
// transaction runs as one implicit transaction, in which a
// transaction-scoped advisory lock serializes starts, so that the count of
// imports in progress cannot be overtaken by a concurrent start; each
// statement after the lock has its own snapshot and sees every start
// committed before the lock was granted. The state is read in the same
// batch, before the start, for the reason of a refusal.
func (s *PostgresStore) Begin(ctx context.Context, req BeginRequest) (Import, error) {
	if err := req.Validate(); err != nil {
		return Import{}, err
	}
	out, err := s.begin(ctx, req)
	var ref *RefusedError
	switch {
	case errors.As(err, &ref), errors.Is(err, ErrStateChanged), errors.Is(err, ErrNotFound):
		return Import{}, err
	case err != nil:
		return Import{}, fmt.Errorf("importserver: starting the %s import of %s: %w", req.Type, req.Path, err)
	}
	return out, nil
}

func (s *PostgresStore) begin(ctx context.Context, req BeginRequest) (Import, error) {
	conn, release, err := storage.AcquireConn(ctx, s.db)
	if err != nil {
		return Import{}, err
	}
	defer release()
	from, fresh := startable(req)
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, s.q.lockKey)
	// The reads that explain a refusal go before the begin statement:
	// only a Begin moves an import into progress, and Begins wait for the
	// lock, so they see a state at least as restrictive as the begin
	// statement's. Read after it, an import finishing in between turned a
	// refusal (429, 425) into ErrStateChanged.
	b.Queue(s.q.count)
	b.Queue(s.q.get, req.Path)
	b.Queue(s.q.begin, req.Path, string(req.Type), string(req.Type.InProgress()), req.Owner, req.MaxRunning, from, fresh)
	res := conn.SendBatch(ctx, b)
	defer res.Close()
	if _, err := res.Exec(); err != nil {
		return Import{}, err
	}
	var running int
	if err := res.QueryRow().Scan(&running); err != nil {
		return Import{}, err
	}
	cur, curErr := scanImport(res.QueryRow())
	if curErr != nil && !errors.Is(curErr, pgx.ErrNoRows) {
		return Import{}, curErr
	}
	started, err := scanImport(res.QueryRow())
	if err == nil {
		return started, res.Close()
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Import{}, err
	}
	if curErr != nil {
		if req.RequireRecord {
			return Import{}, fmt.Errorf("%w: %s has no import record", ErrNotFound, req.Path)
		}
		return Import{}, beginRefused(nil, req, running)
	}
	return Import{}, beginRefused(&cur, req, running)
}

// startable lists the recorded statuses from which CheckBegin lets req
// start, capacity aside, and whether it may start a repository without a
// record; PostgresStore's begin statement checks them, and capacity,
// against the latest state.
func startable(req BeginRequest) (from []string, fresh bool) {
	rule := req
	rule.MaxRunning = 0
	for _, st := range Statuses {
		if CheckBegin(&Import{Path: req.Path, Type: st.Type(), Status: st}, rule, 0) == nil {
			from = append(from, string(st))
		}
	}
	return from, !req.RequireRecord && CheckBegin(nil, rule, 0) == nil
}

// beginRefused explains why a start did not happen: CheckBegin's reason, or
// ErrStateChanged when the state that refused it has changed since.
func beginRefused(cur *Import, req BeginRequest, running int) error {
	reason := CheckBegin(cur, req, running)
	if reason == nil {
		return fmt.Errorf("%w: %s changed while starting", ErrStateChanged, req.Path)
	}
	ref := &RefusedError{Reason: reason, Running: running, Current: Import{Path: req.Path}}
	if cur != nil {
		ref.Current = *cur
	}
	return ref
}

// Finish implements Store.
func (s *PostgresStore) Finish(ctx context.Context, o Outcome) (Import, *Notification, error) {
	if err := o.Validate(); err != nil {
		return Import{}, nil, err
	}
	c := o.Counts
	var claim ClaimRequest
	if o.Claim != nil {
		claim = *o.Claim
	}
	var r importRow
	var n Notification
	var claimed bool
	err := s.db.QueryRow(ctx, s.q.finish, o.Path, o.Run, string(o.Status), ClipDetail(o.Detail),
		c.BlobsCopied, c.BlobsSkipped, c.BytesCopied, c.Manifests, c.Tags, string(o.Status.Type().InProgress()),
		claim.Owner, claim.Token, micros(claim.LeaseFor)).Scan(append(r.fields(), &n.ID, &n.CreatedAt, &n.NextAttemptAt, &claimed)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return Import{}, nil, fmt.Errorf("%w: run %d of %s is no longer in progress", ErrStateChanged, o.Run, o.Path)
	}
	if err != nil {
		return Import{}, nil, fmt.Errorf("importserver: recording %s of %s: %w", o.Status, o.Path, err)
	}
	i := r.value()
	if !claimed {
		return i, nil, nil
	}
	n.Path, n.Run, n.Status, n.Detail, n.State = i.Path, i.Run, i.Status, i.Detail, NotificationPending
	n.CreatedAt, n.NextAttemptAt = n.CreatedAt.UTC(), n.NextAttemptAt.UTC()
	return i, &n, nil
}

// Abandon implements Store.
func (s *PostgresStore) Abandon(ctx context.Context, ref RunRef) error {
	if err := ValidatePath(ref.Path); err != nil {
		return err
	}
	tag, err := s.db.Exec(ctx, s.q.abandon, ref.Path, ref.Run)
	if err != nil {
		return fmt.Errorf("importserver: abandoning run %d of %s: %w", ref.Run, ref.Path, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: run %d of %s is not a first run in progress", ErrStateChanged, ref.Run, ref.Path)
	}
	return nil
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

// RecordDeliveries implements Store in one statement.
func (s *PostgresStore) RecordDeliveries(ctx context.Context, ds []Delivery) error {
	ds, err := lastDeliveries(ds)
	if err != nil || len(ds) == 0 {
		return err
	}
	ids := make([]int64, len(ds))
	states := make([]string, len(ds))
	refused := make([]int32, len(ds))
	codes := make([]int32, len(ds))
	errs := make([]string, len(ds))
	retries := make([]int64, len(ds))
	for i, d := range ds {
		st, _ := d.state() // checked by lastDeliveries
		ids[i], states[i], codes[i], errs[i], retries[i] = d.ID, string(st), int32(d.Code), ClipDetail(d.Err), micros(max(d.RetryIn, 0))
		if d.Refused {
			refused[i] = 1
		}
	}
	if _, err := s.db.Exec(ctx, s.q.record, ids, states, refused, codes, errs, retries); err != nil {
		return fmt.Errorf("importserver: recording %d delivery attempts: %w", len(ds), err)
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
