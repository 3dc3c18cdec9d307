package enqueuertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ferryhq/ferry/enqueuer"

	"github.com/ferryhq/ferry/internal/wait"
)

// Op names a RegistryClient method, for scripting failures and counting
// calls of the fake Registry.
type Op string

// The operations of a RegistryClient.
const (
	OpPreImport Op = "pre-import"
	OpImport    Op = "import"
	OpStatus    Op = "status"
	OpCancel    Op = "cancel"
)

// RegistryOptions tunes NewRegistry. The zero value answers at once and
// accepts any number of imports.
type RegistryOptions struct {
	// MinLatency and MaxLatency bound how long each call takes; the delay
	// is drawn uniformly between them. A call whose context ends first
	// returns the context's error without taking effect.
	MinLatency, MaxLatency time.Duration
	// MaxImports makes a start fail with ErrTooManyImports while that many
	// pre-imports and imports are running. 0: no limit.
	MaxImports int
}

// Registry is an in-memory enqueuer.RegistryClient that behaves like the
// registry's import API: starts are refused while the repository is being
// imported (ErrImportInProgress) or when MaxImports are running
// (ErrTooManyImports), a final import needs a completed pre-import. Tests
// script failures (Fail), finish imports (Complete, FailImport) and read
// what was asked (Calls, Starts). It is safe for concurrent use.
type Registry struct {
	opts RegistryOptions

	mu       sync.Mutex
	status   map[string]enqueuer.RegistryStatus
	progress map[string]enqueuer.ImportProgress
	calls    map[Op]map[string]int
	starts   []Start
	script   []scripted
	inFlight int
	maxSeen  int
}

// Start records one accepted start.
type Start struct {
	Op   Op
	Path string
	At   time.Time
}

type scripted struct {
	op   Op
	path string // "" matches any path
	err  error
}

var _ enqueuer.RegistryClient = (*Registry)(nil)

// NewRegistry returns a Registry that knows no repository yet; every
// repository starts out as not imported.
func NewRegistry(opts RegistryOptions) *Registry {
	if opts.MaxLatency < opts.MinLatency {
		opts.MaxLatency = opts.MinLatency
	}
	return &Registry{
		opts:     opts,
		status:   map[string]enqueuer.RegistryStatus{},
		progress: map[string]enqueuer.ImportProgress{},
		calls:    map[Op]map[string]int{},
	}
}

// Fail makes the next call of op on path (any path when path is "") fail
// with err, after the latency. Scripted failures are used in the order
// they were added; each is used once.
func (r *Registry) Fail(op Op, path string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script = append(r.script, scripted{op: op, path: path, err: err})
}

// SetStatus sets what ImportStatus reports for path.
func (r *Registry) SetStatus(path string, st enqueuer.RegistryStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status[path] = st
}

// Complete finishes the running pre-import or import of path successfully.
func (r *Registry) Complete(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.status[path] {
	case enqueuer.StatusPreImportInProgress:
		r.status[path] = enqueuer.StatusPreImportComplete
	case enqueuer.StatusImportInProgress:
		r.status[path] = enqueuer.StatusImportComplete
	}
}

// FailImport ends the running pre-import or import of path with a failure.
func (r *Registry) FailImport(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.status[path] {
	case enqueuer.StatusPreImportInProgress:
		r.status[path] = enqueuer.StatusPreImportFailed
	case enqueuer.StatusImportInProgress:
		r.status[path] = enqueuer.StatusImportFailed
	}
}

// Calls returns how many times op was called for path (for all paths when
// path is "").
func (r *Registry) Calls(op Op, path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if path != "" {
		return r.calls[op][path]
	}
	n := 0
	for _, c := range r.calls[op] {
		n += c
	}
	return n
}

// Starts returns the accepted starts in the order they were accepted.
func (r *Registry) Starts() []Start {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Start(nil), r.starts...)
}

// Running returns how many pre-imports and imports are in progress.
func (r *Registry) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runningLocked()
}

// MaxConcurrentCalls returns the largest number of calls that were in
// flight at once.
func (r *Registry) MaxConcurrentCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxSeen
}

func (r *Registry) runningLocked() int {
	n := 0
	for _, st := range r.status {
		if st == enqueuer.StatusPreImportInProgress || st == enqueuer.StatusImportInProgress {
			n++
		}
	}
	return n
}

// StartPreImport implements enqueuer.RegistryClient.
func (r *Registry) StartPreImport(ctx context.Context, path string) error {
	return r.call(ctx, OpPreImport, path, func() error {
		switch r.status[path] {
		case enqueuer.StatusNative, enqueuer.StatusImportComplete:
			return r.refuse(OpPreImport, path, 200, enqueuer.ErrNative)
		case enqueuer.StatusPreImportInProgress, enqueuer.StatusImportInProgress:
			return r.refuse(OpPreImport, path, 409, enqueuer.ErrImportInProgress)
		}
		if err := r.checkCapacity(OpPreImport, path); err != nil {
			return err
		}
		r.status[path] = enqueuer.StatusPreImportInProgress
		return nil
	})
}

// StartImport implements enqueuer.RegistryClient.
func (r *Registry) StartImport(ctx context.Context, path string) error {
	return r.call(ctx, OpImport, path, func() error {
		switch r.status[path] {
		case enqueuer.StatusNative, enqueuer.StatusImportComplete:
			return r.refuse(OpImport, path, 200, enqueuer.ErrNative)
		case enqueuer.StatusImportInProgress:
			return r.refuse(OpImport, path, 409, enqueuer.ErrImportInProgress)
		case enqueuer.StatusPreImportInProgress:
			return r.refuse(OpImport, path, 425, enqueuer.ErrTooEarly)
		case enqueuer.StatusPreImportFailed, enqueuer.StatusPreImportCanceled, enqueuer.StatusUnknown:
			return r.refuse(OpImport, path, 424, enqueuer.ErrPreImportFailed)
		}
		if err := r.checkCapacity(OpImport, path); err != nil {
			return err
		}
		r.status[path] = enqueuer.StatusImportInProgress
		return nil
	})
}

// SetProgress sets the progress ImportStatus reports for path while its
// pre-import or import is in progress; nil removes it.
func (r *Registry) SetProgress(path string, p *enqueuer.ImportProgress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p == nil {
		delete(r.progress, path)
		return
	}
	r.progress[path] = *p
}

// ImportStatus implements enqueuer.RegistryClient.
func (r *Registry) ImportStatus(ctx context.Context, path string) (enqueuer.ImportStatus, error) {
	var st enqueuer.ImportStatus
	err := r.call(ctx, OpStatus, path, func() error {
		st = enqueuer.ImportStatus{Status: r.status[path]}
		if p, ok := r.progress[path]; ok && st.InProgress() {
			st.Progress = &p
		}
		return nil
	})
	return st, err
}

// CancelImport implements enqueuer.RegistryClient.
func (r *Registry) CancelImport(ctx context.Context, path string) error {
	return r.call(ctx, OpCancel, path, func() error {
		switch st, known := r.status[path]; {
		case st == enqueuer.StatusPreImportInProgress:
			r.status[path] = enqueuer.StatusPreImportCanceled
		case st == enqueuer.StatusImportInProgress:
			r.status[path] = enqueuer.StatusImportCanceled
		case known:
			return r.refuse(OpCancel, path, 400, enqueuer.ErrImportNotInProgress)
		default:
			return r.refuse(OpCancel, path, 404, enqueuer.ErrRegistryNotFound)
		}
		return nil
	})
}

func (r *Registry) refuse(op Op, path string, code int, err error) error {
	return &enqueuer.RegistryError{Op: string(op), Path: path, StatusCode: code, Err: err}
}

func (r *Registry) checkCapacity(op Op, path string) error {
	if r.opts.MaxImports > 0 && r.runningLocked() >= r.opts.MaxImports {
		return r.refuse(op, path, 429, enqueuer.ErrTooManyImports)
	}
	return nil
}

// call counts the call, waits the latency, then applies a scripted failure
// or effect under the lock. The effect happens at the end of the latency,
// as the real registry answers after it acted.
func (r *Registry) call(ctx context.Context, op Op, path string, effect func() error) error {
	if err := enqueuer.ValidatePath(path); err != nil {
		return &enqueuer.RegistryError{Op: string(op), Path: path, Err: err}
	}
	r.mu.Lock()
	if r.calls[op] == nil {
		r.calls[op] = map[string]int{}
	}
	r.calls[op][path]++
	r.inFlight++
	r.maxSeen = max(r.maxSeen, r.inFlight)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inFlight--
		r.mu.Unlock()
	}()

	if d := r.latency(); d > 0 {
		if err := wait.Sleep(ctx, d); err != nil {
			return &enqueuer.RegistryError{Op: string(op), Path: path, Err: err}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, s := range r.script {
		if s.op == op && (s.path == "" || s.path == path) {
			r.script = append(r.script[:i], r.script[i+1:]...)
			return s.err
		}
	}
	if err := effect(); err != nil {
		return err
	}
	if op == OpPreImport || op == OpImport {
		r.starts = append(r.starts, Start{Op: op, Path: path, At: time.Now()})
	}
	return nil
}

func (r *Registry) latency() time.Duration {
	lo, hi := r.opts.MinLatency, r.opts.MaxLatency
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}

// String describes the fake, for test failure messages.
func (r *Registry) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("enqueuertest.Registry{running: %d, starts: %d}", r.runningLocked(), len(r.starts))
}
