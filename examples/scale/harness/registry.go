package harness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/transfer"
)

// PassFunc runs one import pass over one repository. Registry calls it in
// a goroutine of its own for every accepted start.
type PassFunc func(ctx context.Context, pass transfer.Pass, repo string) (*transfer.Report, error)

// Notifier delivers an import's outcome to the enqueuer, as the registry's
// notification request would: status is one of enqueuer.NotifyPreImportComplete,
// NotifyPreImportFailed, NotifyImportComplete and NotifyImportFailed.
type Notifier func(ctx context.Context, repo, status, reason string) error

// RegistryOptions configures NewRegistry. Pass and Notify are required.
type RegistryOptions struct {
	// Pass runs a pre-import or final import.
	Pass PassFunc
	// Notify reports each finished pass.
	Notify Notifier
	// Capacity is how many passes may run at once; a start beyond it is
	// refused with enqueuer.ErrTooManyImports, like the registry's 429.
	// Give it the enqueuer's capacity. 0: no limit.
	Capacity int
	// Progress, if set, reports how far a running pass has got, for
	// ImportStatus (nil: it does not say).
	Progress func(path string) *enqueuer.ImportProgress
	// NotifyAttempts bounds deliveries of one notification when Notify
	// fails. Default 5.
	NotifyAttempts int
	// Logger receives failed passes and notifications. Default: discard.
	Logger *slog.Logger
}

// Registry is an in-process enqueuer.RegistryClient backed by the transfer
// importer: StartPreImport and StartImport start the pass in the
// background and answer at once; when the pass ends the registry notifies
// the enqueuer. It keeps the import status of every repository it was
// asked about, refuses a second start of a running import, a final import
// without a completed pre-import, and starts beyond its capacity, as the
// registry's import API does.
//
// Close cancels what still runs and waits for it, so no goroutine
// outlives the Registry.
type Registry struct {
	opts RegistryOptions

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	status  map[string]enqueuer.RegistryStatus
	running map[string]context.CancelFunc
	closed  bool
}

var _ enqueuer.RegistryClient = (*Registry)(nil)

// NewRegistry returns a Registry. Its imports run until they finish or
// Close is called.
func NewRegistry(opts RegistryOptions) (*Registry, error) {
	if opts.Pass == nil || opts.Notify == nil {
		return nil, errors.New("scale.NewRegistry: Pass and Notify are required")
	}
	if opts.Capacity < 0 {
		return nil, fmt.Errorf("scale.NewRegistry: negative Capacity %d", opts.Capacity)
	}
	if opts.NotifyAttempts <= 0 {
		opts.NotifyAttempts = 5
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Registry{
		opts:    opts,
		ctx:     ctx,
		cancel:  cancel,
		status:  map[string]enqueuer.RegistryStatus{},
		running: map[string]context.CancelFunc{},
	}, nil
}

// StartPreImport implements enqueuer.RegistryClient.
func (r *Registry) StartPreImport(ctx context.Context, path string) error {
	return r.start(ctx, "pre-import", transfer.PreImport, path)
}

// StartImport implements enqueuer.RegistryClient.
func (r *Registry) StartImport(ctx context.Context, path string) error {
	return r.start(ctx, "import", transfer.FinalImport, path)
}

func (r *Registry) start(ctx context.Context, op string, pass transfer.Pass, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := transfer.ValidateRepository(path); err != nil {
		return &enqueuer.RegistryError{Op: op, Path: path, StatusCode: 400, Err: err}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	refuse := func(code int, err error) error {
		return &enqueuer.RegistryError{Op: op, Path: path, StatusCode: code, Err: err}
	}
	switch st := r.status[path]; {
	case r.closed:
		return refuse(503, enqueuer.ErrRegistryUnavailable)
	case st == enqueuer.StatusImportComplete:
		return refuse(200, enqueuer.ErrNative)
	case st == enqueuer.StatusPreImportInProgress || st == enqueuer.StatusImportInProgress:
		return refuse(409, enqueuer.ErrImportInProgress)
	case pass == transfer.FinalImport && st != enqueuer.StatusPreImportComplete:
		return refuse(424, enqueuer.ErrPreImportFailed)
	case r.opts.Capacity > 0 && len(r.running) >= r.opts.Capacity:
		return refuse(429, enqueuer.ErrTooManyImports)
	}
	ictx, cancel := context.WithCancel(r.ctx)
	r.running[path] = cancel
	if pass == transfer.PreImport {
		r.status[path] = enqueuer.StatusPreImportInProgress
	} else {
		r.status[path] = enqueuer.StatusImportInProgress
	}
	r.wg.Add(1)
	go r.run(ictx, cancel, pass, path)
	return nil
}

// run is one pass in the background, then its notification.
func (r *Registry) run(ctx context.Context, cancel context.CancelFunc, pass transfer.Pass, path string) {
	defer r.wg.Done()
	defer cancel()
	_, err := r.opts.Pass(ctx, pass, path)

	var status enqueuer.RegistryStatus
	var notify, reason string
	switch {
	case err == nil && pass == transfer.PreImport:
		status, notify = enqueuer.StatusPreImportComplete, enqueuer.NotifyPreImportComplete
	case err == nil:
		status, notify = enqueuer.StatusImportComplete, enqueuer.NotifyImportComplete
	case ctx.Err() != nil && pass == transfer.PreImport:
		status = enqueuer.StatusPreImportCanceled
	case ctx.Err() != nil:
		status = enqueuer.StatusImportCanceled
	case pass == transfer.PreImport:
		status, notify, reason = enqueuer.StatusPreImportFailed, enqueuer.NotifyPreImportFailed, err.Error()
	default:
		status, notify, reason = enqueuer.StatusImportFailed, enqueuer.NotifyImportFailed, err.Error()
	}
	if err != nil {
		r.opts.Logger.Warn("scale: import pass failed", slog.String("repository", path),
			slog.String("pass", pass.String()), slog.Any("error", err))
	}
	r.mu.Lock()
	delete(r.running, path)
	r.status[path] = status
	r.mu.Unlock()
	if notify == "" {
		return // cancelled: the enqueuer cancelled it, or we are closing
	}
	r.deliver(path, notify, reason)
}

// deliver sends a notification, retrying failed deliveries a few times as
// the registry does.
func (r *Registry) deliver(path, status, reason string) {
	pause := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := r.opts.Notify(r.ctx, path, status, reason)
		if err == nil {
			return
		}
		if attempt >= r.opts.NotifyAttempts || r.ctx.Err() != nil {
			// The enqueuer's stale guard asks ImportStatus later and
			// settles the repository from there.
			r.opts.Logger.Error("scale: notification not delivered", slog.String("repository", path),
				slog.String("status", status), slog.Any("error", err))
			return
		}
		if sleep(r.ctx, pause) != nil {
			return
		}
		pause *= 2
	}
}

// ImportStatus implements enqueuer.RegistryClient.
func (r *Registry) ImportStatus(ctx context.Context, path string) (enqueuer.ImportStatus, error) {
	if err := ctx.Err(); err != nil {
		return enqueuer.ImportStatus{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.status[path]
	if !ok {
		return enqueuer.ImportStatus{Status: enqueuer.StatusNative},
			&enqueuer.RegistryError{Op: "status", Path: path, StatusCode: 404, Err: enqueuer.ErrRegistryNotFound}
	}
	out := enqueuer.ImportStatus{Status: st}
	if out.InProgress() && r.opts.Progress != nil {
		out.Progress = r.opts.Progress(path)
	}
	return out, nil
}

// CancelImport implements enqueuer.RegistryClient. The pass stops soon
// after; the repository's status becomes canceled and no notification is
// sent.
func (r *Registry) CancelImport(ctx context.Context, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cancel, ok := r.running[path]
	if !ok {
		return &enqueuer.RegistryError{Op: "cancel", Path: path, StatusCode: 404, Err: enqueuer.ErrRegistryNotFound}
	}
	cancel()
	return nil
}

// Running returns how many passes are running.
func (r *Registry) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.running)
}

// Close refuses new starts, cancels running passes and waits for them to
// end (or for ctx).
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("scale: registry close: %w", ctx.Err())
	}
}
