package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/transfer"

	"github.com/ferryhq/ferry/internal/wait"
)

// pass is one of the two import passes, as the registry's import API
// names them (import_type=pre|final).
type pass string

const (
	passPre   pass = "pre"
	passFinal pass = "final"
)

// Job statuses in registryhost_imports.
const (
	jobRunning  = "running"
	jobComplete = "complete"
	jobFailed   = "failed"
	jobCanceled = "canceled"
)

// registryLockKey serializes start decisions (capacity, in progress) across
// connections: "rhimport" in ASCII.
const registryLockKey int64 = 0x7268696d706f7274

// registry is the registry side of the migration, in process. It
// implements enqueuer.RegistryClient as a registry's import API would:
// a start is recorded in the host's table registryhost_imports and
// answered at once; the pass then runs as a job on the import queue (the
// transfer importer, from the source bucket into the destination), and its
// outcome is reported to the notification endpoint over HTTP, with retries.
//
// Everything it must not forget is in the table before it acts, so a host
// that stops part way resumes on its next start: passes still recorded as
// running are run again (the importer is idempotent) and outcomes not yet
// delivered are sent again (the endpoint accepts duplicates). It assumes
// one registry side per database, as a real registry is one service.
type registry struct {
	db          *storage.DB
	im          *transfer.Importer
	known       map[string]bool // repositories in the source layout
	capacity    int
	queues      *queues
	notifyURL   string // the endpoint's prefix, ending before /repositories/
	secret      string
	client      *http.Client
	importDelay time.Duration
	logger      *slog.Logger
	// jobCtx is the context of every pass and notification; it ends at a
	// hard stop, not at the start of a graceful shutdown.
	jobCtx context.Context

	mu      sync.Mutex
	running map[string]context.CancelFunc // by path: the pass in progress
}

var _ enqueuer.RegistryClient = (*registry)(nil)

// StartPreImport implements enqueuer.RegistryClient.
func (r *registry) StartPreImport(ctx context.Context, path string) error {
	return r.start(ctx, path, passPre)
}

// StartImport implements enqueuer.RegistryClient.
func (r *registry) StartImport(ctx context.Context, path string) error {
	return r.start(ctx, path, passFinal)
}

func refusal(op, path string, code int, err error) error {
	return &enqueuer.RegistryError{Op: op, Path: path, StatusCode: code, Err: err}
}

func opName(p pass) string {
	if p == passPre {
		return "pre-import"
	}
	return "import"
}

// start records a pass as running, if the registry would accept it, and
// submits it. Refusals use the status codes and sentinels of the real API.
func (r *registry) start(ctx context.Context, path string, p pass) error {
	op := opName(p)
	if !r.known[path] {
		return refusal(op, path, http.StatusNotFound, enqueuer.ErrRegistryNotFound)
	}
	var refused error
	err := storage.InTx(ctx, r.db, func(tx pgx.Tx) error {
		refused = nil
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, registryLockKey); err != nil {
			return err
		}
		var running int
		var pre, final string
		err := tx.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM registryhost_imports WHERE status = 'running'),
				coalesce((SELECT status FROM registryhost_imports WHERE path = $1 AND pass = 'pre'), ''),
				coalesce((SELECT status FROM registryhost_imports WHERE path = $1 AND pass = 'final'), '')`,
			path).Scan(&running, &pre, &final)
		if err != nil {
			return err
		}
		switch {
		case pre == jobRunning || final == jobRunning:
			refused = refusal(op, path, http.StatusConflict, enqueuer.ErrImportInProgress)
		case final == jobComplete:
			refused = refusal(op, path, http.StatusOK, enqueuer.ErrNative)
		case p == passFinal && pre != jobComplete:
			refused = refusal(op, path, http.StatusFailedDependency, enqueuer.ErrPreImportFailed)
		case running >= r.capacity:
			refused = refusal(op, path, http.StatusTooManyRequests, enqueuer.ErrTooManyImports)
		}
		if refused != nil {
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO registryhost_imports (path, pass, status) VALUES ($1, $2, 'running')
			ON CONFLICT (path, pass) DO UPDATE SET status = 'running', attempts = registryhost_imports.attempts + 1,
				detail = '', started_at = now(), finished_at = NULL, notified_at = NULL`, path, string(p))
		return err
	})
	if err != nil {
		return refusal(op, path, http.StatusServiceUnavailable, fmt.Errorf("%w: %w", enqueuer.ErrRegistryUnavailable, err))
	}
	if refused != nil {
		return refused
	}
	r.launch(path, p)
	return nil
}

// launch submits a recorded pass to the import queue.
func (r *registry) launch(path string, p pass) {
	ctx, cancel := context.WithCancel(r.jobCtx)
	r.mu.Lock()
	r.running[path] = cancel
	r.mu.Unlock()
	r.queues.submit(ctx, kindImport, func(ctx context.Context) {
		defer func() {
			r.mu.Lock()
			delete(r.running, path)
			r.mu.Unlock()
			cancel()
		}()
		r.runPass(ctx, path, p)
	})
}

// runPass runs the importer's pass and records and reports its outcome.
// When ctx ends first (a hard stop, or CancelImport) nothing is recorded:
// the row stays as it is, to be resumed or as CancelImport left it.
func (r *registry) runPass(ctx context.Context, path string, p pass) {
	if ctx.Err() != nil {
		return
	}
	log := r.logger.With("job", kindImport, "queue", r.queues.queue(kindImport), "repository", path, "pass", p)
	t0 := time.Now()
	var rep *transfer.Report
	var err error
	if p == passPre {
		rep, err = r.im.PreImport(ctx, path)
	} else {
		rep, err = r.im.Import(ctx, path)
	}
	if err == nil && r.importDelay > 0 {
		err = wait.Sleep(ctx, r.importDelay-time.Since(t0))
	}
	if ctx.Err() != nil {
		log.InfoContext(ctx, "registryhost: import pass interrupted; it runs again on the next start")
		return
	}
	status, detail := jobComplete, ""
	if err != nil {
		status, detail = jobFailed, err.Error()
	}
	var copied, bytes int64
	var manifests, tags int
	if rep != nil {
		copied, bytes, manifests, tags = rep.BlobsCopied, rep.BytesCopied, rep.Manifests, rep.Tags
	}
	// The pass is done: record it even if a hard stop begins right now.
	rec, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	tag, err := r.db.Exec(rec, `UPDATE registryhost_imports SET status = $3, detail = $4, finished_at = now(),
			blobs_copied = $5, bytes_copied = $6, manifests = $7, tags = $8
		WHERE path = $1 AND pass = $2 AND status = 'running'`, path, string(p), status, detail, copied, bytes, manifests, tags)
	switch {
	case err != nil:
		log.ErrorContext(ctx, "registryhost: could not record an import pass; it runs again on the next start", "error", err)
		return
	case tag.RowsAffected() == 0:
		log.InfoContext(ctx, "registryhost: import pass was cancelled meanwhile")
		return
	}
	log.InfoContext(ctx, "registryhost: import pass done", "status", status, "blobs_copied", copied,
		"bytes_copied", bytes, "duration", time.Since(t0).Round(time.Millisecond))
	r.submitNotification(path, p, status, detail)
}

// submitNotification queues the report of a finished pass.
func (r *registry) submitNotification(path string, p pass, status, detail string) {
	r.queues.submit(r.jobCtx, kindNotification, func(ctx context.Context) {
		r.notify(ctx, path, p, status, detail)
	})
}

// notifyStatus is what the endpoint calls a pass's outcome.
func notifyStatus(p pass, status string) string {
	switch {
	case p == passPre && status == jobComplete:
		return enqueuer.NotifyPreImportComplete
	case p == passPre:
		return enqueuer.NotifyPreImportFailed
	case status == jobComplete:
		return enqueuer.NotifyImportComplete
	}
	return enqueuer.NotifyImportFailed
}

// notify PUTs the outcome to the endpoint until it is accepted (200), the
// endpoint refuses it for good (4xx), or ctx ends; then it records that
// the notification was delivered.
func (r *registry) notify(ctx context.Context, path string, p pass, status, detail string) {
	log := r.logger.With("job", kindNotification, "queue", r.queues.queue(kindNotification), "repository", path, "pass", p)
	body, _ := json.Marshal(map[string]string{"status": notifyStatus(p, status), "reason": detail})
	backoff := 50 * time.Millisecond
	for {
		code, answer, err := r.put(ctx, path, body)
		if ctx.Err() != nil {
			log.InfoContext(ctx, "registryhost: notification not delivered; it is sent again on the next start")
			return
		}
		if _, uerr := r.db.Exec(ctx, `UPDATE registryhost_imports SET notify_attempts = notify_attempts + 1
			WHERE path = $1 AND pass = $2`, path, string(p)); uerr != nil {
			log.WarnContext(ctx, "registryhost: could not count a notification attempt", "error", uerr)
		}
		switch {
		case err == nil && code == http.StatusOK:
			log.InfoContext(ctx, "registryhost: notification delivered", "answer", answer)
		case err == nil && code >= 400 && code < 500 && code != http.StatusTooManyRequests:
			// The enqueuer moved on (say, its stale guard aborted the
			// repository); sending again would get the same answer.
			log.WarnContext(ctx, "registryhost: notification refused", "code", code, "answer", answer)
		default:
			log.WarnContext(ctx, "registryhost: notification failed; retrying", "code", code, "error", err, "backoff", backoff)
			if wait.Sleep(ctx, backoff) != nil {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		if _, err := r.db.Exec(ctx, `UPDATE registryhost_imports SET notified_at = now() WHERE path = $1 AND pass = $2`,
			path, string(p)); err != nil {
			log.ErrorContext(ctx, "registryhost: could not record a delivered notification; it is sent again on the next start", "error", err)
		}
		return
	}
}

func (r *registry) put(ctx context.Context, path string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, r.notifyURL+"/repositories/"+path+"/migration/status", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+r.secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, string(bytes.TrimSpace(answer)), err
}

// ImportStatus implements enqueuer.RegistryClient: the final pass's status
// if it was started, else the pre-import's.
func (r *registry) ImportStatus(ctx context.Context, path string) (enqueuer.ImportStatus, error) {
	rows, err := r.db.Query(ctx, `SELECT pass, status, detail FROM registryhost_imports WHERE path = $1`, path)
	if err != nil {
		return enqueuer.ImportStatus{}, refusal("status", path, http.StatusServiceUnavailable, fmt.Errorf("%w: %w", enqueuer.ErrRegistryUnavailable, err))
	}
	byPass := map[pass][2]string{}
	for rows.Next() {
		var p, status, detail string
		if err := rows.Scan(&p, &status, &detail); err != nil {
			rows.Close()
			return enqueuer.ImportStatus{}, err
		}
		byPass[pass(p)] = [2]string{status, detail}
	}
	if err := rows.Err(); err != nil {
		return enqueuer.ImportStatus{}, err
	}
	if job, ok := byPass[passFinal]; ok {
		return enqueuer.ImportStatus{Status: registryStatus(passFinal, job[0]), Detail: job[1]}, nil
	}
	if job, ok := byPass[passPre]; ok {
		return enqueuer.ImportStatus{Status: registryStatus(passPre, job[0]), Detail: job[1]}, nil
	}
	if !r.known[path] {
		return enqueuer.ImportStatus{}, refusal("status", path, http.StatusNotFound, enqueuer.ErrRegistryNotFound)
	}
	return enqueuer.ImportStatus{Status: enqueuer.StatusUnknown}, nil
}

func registryStatus(p pass, status string) enqueuer.RegistryStatus {
	pre := map[string]enqueuer.RegistryStatus{jobRunning: enqueuer.StatusPreImportInProgress, jobComplete: enqueuer.StatusPreImportComplete,
		jobFailed: enqueuer.StatusPreImportFailed, jobCanceled: enqueuer.StatusPreImportCanceled}
	final := map[string]enqueuer.RegistryStatus{jobRunning: enqueuer.StatusImportInProgress, jobComplete: enqueuer.StatusImportComplete,
		jobFailed: enqueuer.StatusImportFailed, jobCanceled: enqueuer.StatusImportCanceled}
	if p == passPre {
		return pre[status]
	}
	return final[status]
}

// CancelImport implements enqueuer.RegistryClient: it marks the running
// pass canceled and stops it.
func (r *registry) CancelImport(ctx context.Context, path string) error {
	tag, err := r.db.Exec(ctx, `UPDATE registryhost_imports SET status = 'canceled', finished_at = now()
		WHERE path = $1 AND status = 'running'`, path)
	if err != nil {
		return refusal("cancel", path, http.StatusServiceUnavailable, fmt.Errorf("%w: %w", enqueuer.ErrRegistryUnavailable, err))
	}
	if tag.RowsAffected() == 0 {
		return refusal("cancel", path, http.StatusNotFound, enqueuer.ErrRegistryNotFound)
	}
	r.mu.Lock()
	cancel := r.running[path]
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	return nil
}

// resume runs again the passes an earlier run left running and sends the
// notifications it did not deliver. Call it before the enqueuer starts.
func (r *registry) resume(ctx context.Context) (passes, notifications int, err error) {
	type job struct {
		path           string
		p              pass
		status, detail string
	}
	rows, err := r.db.Query(ctx, `SELECT path, pass, status, detail FROM registryhost_imports
		WHERE status = 'running' OR (status IN ('complete', 'failed') AND notified_at IS NULL) ORDER BY started_at, path`)
	if err != nil {
		return 0, 0, fmt.Errorf("reading unfinished imports: %w", err)
	}
	jobs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (job, error) {
		var j job
		err := row.Scan(&j.path, &j.p, &j.status, &j.detail)
		return j, err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("reading unfinished imports: %w", err)
	}
	for _, j := range jobs {
		if j.status != jobRunning {
			r.submitNotification(j.path, j.p, j.status, j.detail)
			notifications++
			continue
		}
		if _, err := r.db.Exec(ctx, `UPDATE registryhost_imports SET attempts = attempts + 1, started_at = now()
			WHERE path = $1 AND pass = $2`, j.path, string(j.p)); err != nil {
			return passes, notifications, fmt.Errorf("resuming %s (%s): %w", j.path, j.p, err)
		}
		r.launch(j.path, j.p)
		passes++
	}
	return passes, notifications, nil
}
