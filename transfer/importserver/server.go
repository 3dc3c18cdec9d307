package importserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/ferryhq/ferry/internal/backoff"
	"github.com/ferryhq/ferry/internal/wait"
	"github.com/ferryhq/ferry/transfer"
)

// phase is where a Server is in its life.
type phase int

const (
	phaseNew phase = iota
	phaseRunning
	phaseStopping
	phaseStopped
)

func (p phase) String() string {
	return [...]string{"not started", "running", "shutting down", "stopped"}[p]
}

// recordTimeout bounds the recording of one outcome, retries included.
const recordTimeout = 30 * time.Second

// Server is the registry side of the import protocol: the import API
// (Handler), the write guard for the registry's own API (WriteGuard), the
// imports it runs in the background, and the delivery of their outcomes
// from the durable outbox. Create it with New, call Start, and Shutdown at
// the end.
type Server struct {
	cfg   Config
	log   *slog.Logger
	obs   Observer
	token string // this process's claim token: new for every Server
	// ownClient is true when Notify.Client is the server's own, whose idle
	// connections Shutdown closes.
	ownClient bool

	mu     sync.Mutex
	phase  phase
	runs   map[string]*activeRun      // by path: imports this process runs
	writes map[string]*writesInFlight // by path: writes WriteGuard let through

	starting sync.WaitGroup // start requests past the phase check
	imports  sync.WaitGroup // running imports

	// recordCtx is the parent of outcome recordings; Shutdown cancels it
	// only when its own context ends first.
	recordCtx  context.Context
	stopRecord context.CancelFunc
	loopCtx    context.Context
	stopLoops  context.CancelFunc
	loops      sync.WaitGroup
	wake       chan struct{} // the outbox may hold due notifications
	// handed are notifications Finish claimed for this process, for the
	// delivery loop (guarded by mu); handedWake says there are some.
	handed     []Notification
	handedWake chan struct{}
	// claiming counts the Finish calls claiming a notification for handed
	// (guarded by mu).
	claiming int
	// flush asks the delivery loop for a last pass within the given
	// context, after which it ends.
	flush chan context.Context
	// deliveryDone is closed when the delivery loop ended.
	deliveryDone chan struct{}
}

// activeRun is an import this process runs.
type activeRun struct {
	ref    RunRef
	cancel context.CancelCauseFunc
	// progress counts what the run's transfer.Importer pass reports.
	progress *progressRecorder
	// check is set for a first pre-import started during its existence
	// check.
	check *firstCheck
}

// New checks cfg, applies its defaults and returns a Server that is not
// started yet: its Handler answers 503 until Start.
func New(cfg Config) (*Server, error) {
	ownClient := cfg.Notify.Client == nil
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger.With("instance", cfg.Instance),
		obs:   cfg.Observer,
		token: hex.EncodeToString(b[:]),

		ownClient: ownClient,
		runs:      map[string]*activeRun{},
		writes:    map[string]*writesInFlight{},
		wake:      make(chan struct{}, 1),

		handedWake: make(chan struct{}, 1),
		flush:      make(chan context.Context, 1),

		deliveryDone: make(chan struct{}),
	}
	s.recordCtx, s.stopRecord = context.WithCancel(context.Background())
	s.loopCtx, s.stopLoops = context.WithCancel(context.Background())
	return s, nil
}

// Instance returns the server's Config.Instance (or its default).
func (s *Server) Instance() string { return s.cfg.Instance }

// Start ends the imports that an earlier process left in progress (those
// recorded for this Instance, and any whose heartbeat is older than
// StaleAfter), as failed and notified, and then starts the background
// work: heartbeats and the stale sweep, and the delivery of the outbox.
// ctx bounds only the start-up work. From then on the Handler accepts
// starts.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.phase != phaseNew {
		defer s.mu.Unlock()
		return fmt.Errorf("%w: Start on a server that is %s", ErrNotRunning, s.phase)
	}
	s.mu.Unlock()

	restarted, err := s.cfg.Store.FailStale(ctx, StaleRequest{Owner: s.cfg.Instance,
		Detail: fmt.Sprintf("interrupted: registry instance %s stopped while importing and was restarted", s.cfg.Instance)})
	if err != nil {
		return err
	}
	stale, err := s.cfg.Store.FailStale(ctx, StaleRequest{StaleAfter: s.cfg.StaleAfter,
		Detail: fmt.Sprintf("interrupted: no heartbeat from its registry instance for more than %s", s.cfg.StaleAfter)})
	if err != nil {
		return err
	}
	s.reportStale(ctx, append(restarted, stale...))

	s.mu.Lock()
	s.phase = phaseRunning
	s.mu.Unlock()
	s.loops.Add(2)
	go func() {
		defer s.loops.Done()
		s.heartbeatLoop(s.loopCtx)
	}()
	go func() {
		defer s.loops.Done()
		defer close(s.deliveryDone)
		s.deliveryLoop(s.loopCtx)
	}()
	s.poke()
	s.log.InfoContext(ctx, "importserver: started", "max_concurrent_imports", s.cfg.MaxConcurrentImports,
		"stale_imports_failed", len(restarted)+len(stale))
	return nil
}

// Shutdown stops the server: it accepts no more starts, lets running
// imports finish for up to Config.ShutdownGrace, cancels the rest and
// waits until they stopped and their outcomes (failed:
// "interrupted: the registry is shutting down") are recorded in the
// outbox, tries once to deliver what the outbox holds, and stops the
// background work. When ctx ends first, Shutdown stops waiting for the
// recordings (imports not recorded are then found stale by the next
// start) and returns ctx's error once every goroutine ended. Undelivered
// notifications stay in the outbox for the next process.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	switch s.phase {
	case phaseNew, phaseStopped:
		s.phase = phaseStopped
		s.mu.Unlock()
		s.stopRecord()
		s.stopLoops()
		return nil
	case phaseStopping:
		s.mu.Unlock()
		return fmt.Errorf("%w: Shutdown already in progress", ErrNotRunning)
	}
	s.phase = phaseStopping
	s.mu.Unlock()

	s.starting.Wait() // no run is launched after this
	done := make(chan struct{})
	go func() {
		s.imports.Wait()
		close(done)
	}()
	if s.cfg.ShutdownGrace > 0 {
		grace, cancel := context.WithTimeout(ctx, s.cfg.ShutdownGrace)
		select {
		case <-done:
		case <-grace.Done():
		}
		cancel()
	}
	s.mu.Lock()
	n := len(s.runs)
	for _, r := range s.runs {
		r.cancel(stopShutdown)
	}
	s.mu.Unlock()
	s.log.InfoContext(ctx, "importserver: shutting down", "imports_canceled", n)

	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("importserver: shutdown: %w", ctx.Err())
		s.stopRecord()
		<-done
	}
	s.flush <- ctx // the delivery loop makes a last pass (if ctx allows) and ends
	<-s.deliveryDone
	s.stopLoops()
	s.loops.Wait()
	s.stopRecord()
	if s.ownClient {
		s.cfg.Notify.Client.CloseIdleConnections()
	}
	s.mu.Lock()
	s.phase = phaseStopped
	s.mu.Unlock()
	return err
}

// stopCause is why a run's context was cancelled: what to record (result
// "" records nothing: someone else already ended the run).
type stopCause struct {
	result Result
	detail string
}

func (c *stopCause) Error() string { return c.detail }

var (
	stopShutdown  = &stopCause{Failed, "interrupted: the registry is shutting down"}
	stopRequested = &stopCause{Canceled, "canceled by request"}
	stopWrite     = &stopCause{Canceled, "canceled: the repository was written to during its pre-import"}
	stopLost      = &stopCause{"", "ended elsewhere (forced cancellation or stale)"}
	stopAbandoned = &stopCause{"", "abandoned: the repository was not found or could not be checked"}
)

func (s *Server) timeout(t Type) time.Duration {
	if t == PreImport {
		return s.cfg.PreImportTimeout
	}
	return s.cfg.ImportTimeout
}

// launch runs a recorded start in the background. A first pre-import
// started while its repository is checked (startFirst) passes that check.
func (s *Server) launch(imp Import, check *firstCheck) *activeRun {
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &activeRun{ref: imp.Ref(), cancel: cancel, progress: newProgressRecorder(imp.Path), check: check}
	s.mu.Lock()
	s.runs[imp.Path] = r
	s.imports.Add(1)
	s.mu.Unlock()
	go s.execute(ctx, r, imp)
	return r
}

// firstCheck is the existence check a repository's first pre-import runs
// alongside (startFirst). The handler settles it once; the run waits for
// it before its first write (when its plan is known) and before its
// outcome, and is abandoned when the repository was not found or could
// not be checked. done is closed when the run has ended.
type firstCheck struct {
	settled chan struct{} // closed once found is set
	found   bool
	done    chan struct{} // closed once abandonErr is set
	// abandonErr is why a run that was to be abandoned could not be
	// (its record stays, for the stale sweep).
	abandonErr error
}

func newFirstCheck() *firstCheck {
	return &firstCheck{settled: make(chan struct{}), done: make(chan struct{})}
}

func (c *firstCheck) settle(found bool) {
	c.found = found
	close(c.settled)
}

// gate is the run's progress callback: with a check, the plan's event
// (the last one before the importer's first write) waits until the check
// is settled, so that a run abandoned for a repository that is not there
// wrote nothing. It waits for the settling even when the run's context
// ends first: abandoning cancels the run and then settles, and a context
// tree is cancelled one context at a time, so the gate's context can be
// done while the importer's, below it, is not yet (the importer then
// wrote; 1 run in 10 under -race on a loaded machine). Every check is
// settled (startFirst), and the run waits for it before its outcome
// anyway.
func (r *activeRun) gate() func(transfer.Progress) {
	if r.check == nil {
		return r.progress.observe
	}
	return func(p transfer.Progress) {
		if p.Kind == transfer.EventRepositoryPlanned {
			<-r.check.settled
		}
		r.progress.observe(p)
	}
}

// stopRun cancels the run ref if this process runs it.
func (s *Server) stopRun(ref RunRef, cause *stopCause) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.runLocked(ref)
	if r == nil {
		return false
	}
	r.cancel(cause)
	return true
}

// stopActive cancels run r if it is still this process's run of its
// repository.
func (s *Server) stopActive(r *activeRun, cause *stopCause) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs[r.ref.Path] != r {
		return false
	}
	r.cancel(cause)
	return true
}

// runLocked returns this process's run ref, or nil; s.mu is held.
func (s *Server) runLocked(ref RunRef) *activeRun {
	if r := s.runs[ref.Path]; r != nil && r.ref == ref {
		return r
	}
	return nil
}

// execute runs one import and records its outcome. The importer runs
// under transfer.WithProgress, reporting to progress (what GET shows).
func (s *Server) execute(ctx context.Context, run *activeRun, imp Import) {
	defer s.imports.Done()
	if run.check != nil {
		defer close(run.check.done)
	}
	defer run.cancel(nil)
	timeout := s.timeout(imp.Type)
	runCtx, stop := context.WithTimeoutCause(ctx, timeout,
		&stopCause{Failed, fmt.Sprintf("%s timed out after %s", noun(imp.Type), timeout)})
	defer stop()
	log := s.log.With("repository", imp.Path, "import_type", string(imp.Type), "run", imp.Run)
	began := time.Now()
	runCtx = s.obs.ImportStart(runCtx, ImportStartEvent{Import: imp})
	log.InfoContext(runCtx, "importserver: import started")

	rep, err := s.run(transfer.WithProgress(runCtx, run.gate()), imp)
	result, detail, record := classify(runCtx, imp, rep, err)
	ev := ImportEvent{Import: imp, Result: result, Duration: time.Since(began), Report: rep, Err: err}
	if run.check != nil {
		if <-run.check.settled; !run.check.found {
			record, ev.Result = false, ""
			switch aerr := s.abandon(imp.Ref()); {
			case aerr == nil:
				ev.Abandoned = true
				log.InfoContext(runCtx, "importserver: first pre-import abandoned: the repository was not found or could not be checked")
			case errors.Is(aerr, ErrStateChanged):
				log.InfoContext(runCtx, "importserver: import was ended elsewhere meanwhile", "error", aerr)
			default:
				ev.Err, run.check.abandonErr = aerr, aerr
				log.ErrorContext(runCtx, "importserver: could not abandon the start of a repository that was not found; it will be found stale",
					"error", aerr)
			}
		}
	}
	if record {
		o := Outcome{Path: imp.Path, Run: imp.Run, Status: imp.Type.Outcome(result), Detail: detail, Counts: countsOf(rep)}
		recorded, rerr := s.record(o)
		switch {
		case rerr == nil:
			ev.Import, ev.Recorded = recorded, true
		case errors.Is(rerr, ErrStateChanged):
			log.InfoContext(runCtx, "importserver: import was ended elsewhere meanwhile", "error", rerr)
		default:
			ev.Err = rerr
			log.ErrorContext(runCtx, "importserver: could not record the outcome; the import will be found stale",
				"status", o.Status, "error", rerr)
		}
		if ev.Recorded {
			level := slog.LevelInfo
			if result != Complete {
				level = slog.LevelWarn
			}
			log.Log(runCtx, level, "importserver: import ended", "status", o.Status, "detail", detail,
				"duration", ev.Duration.Round(time.Millisecond))
		}
	}
	s.mu.Lock()
	if s.runs[imp.Path] == run { // not by ref: an abandoned run's number is used again
		delete(s.runs, imp.Path)
	}
	s.mu.Unlock()
	s.obs.ImportEnd(context.WithoutCancel(runCtx), ev)
}

// run waits for the writes a final import must not overlap, then calls
// the importer. A panic in the importer (the host's Sink) fails the run
// instead of the process.
func (s *Server) run(ctx context.Context, imp Import) (rep *transfer.Report, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.ErrorContext(ctx, "importserver: importer panicked", "repository", imp.Path, "panic", p, "stack", string(debug.Stack()))
			rep, err = nil, fmt.Errorf("importer panicked: %v", p)
		}
	}()
	if imp.Type == FinalImport {
		if err := s.drain(ctx, imp.Path); err != nil {
			return nil, err
		}
		return s.cfg.Importer.Import(ctx, imp.Path)
	}
	return s.cfg.Importer.PreImport(ctx, imp.Path)
}

// classify decides how a run ended: what to record, and whether to.
func classify(ctx context.Context, imp Import, rep *transfer.Report, err error) (Result, string, bool) {
	if err == nil {
		if rep != nil && len(rep.TooLarge) > 0 {
			tl := rep.TooLarge[0]
			return Failed, fmt.Sprintf("repository has %d tags, more than the importer's limit of %d", tl.Tags, tl.Limit), true
		}
		return Complete, completeDetail(imp.Type, rep), true
	}
	var sc *stopCause
	if ctx.Err() != nil && errors.As(context.Cause(ctx), &sc) {
		return sc.result, sc.detail, sc.result != ""
	}
	return Failed, err.Error(), true
}

func noun(t Type) string {
	if t == PreImport {
		return "pre-import"
	}
	return "final import"
}

func completeDetail(t Type, rep *transfer.Report) string {
	if rep == nil {
		return noun(t) + " completed successfully"
	}
	return fmt.Sprintf("%s completed successfully: %d manifests, %d tags, %d blobs copied (%s), %d already present",
		noun(t), rep.Manifests, rep.Tags, rep.BlobsCopied, transfer.FormatBytes(rep.BytesCopied), rep.BlobsSkipped)
}

func countsOf(rep *transfer.Report) Counts {
	if rep == nil {
		return Counts{}
	}
	return Counts{BlobsCopied: rep.BlobsCopied, BlobsSkipped: rep.BlobsSkipped, BytesCopied: rep.BytesCopied,
		Manifests: rep.Manifests, Tags: rep.Tags}
}

// record stores an outcome and gets its notification delivered: claimed
// for this process in the same store call and handed to the delivery
// loop, or left to the outbox claim. It retries store failures for up to
// recordTimeout: the import's work is done and must not be lost to a
// blip. ErrStateChanged is final. (A Finish that committed but whose
// answer was lost leaves its notification claimed by this process until
// its lease ends: delivered late, never lost.)
//
// It claims only while the handed backlog is short (one batch): behind a
// slow coordinator a notification waiting longer in memory would outlive
// its lease, and then be claimed and sent again, or be sent after a newer
// run superseded it. Left unclaimed, the outbox claim (which skips
// superseded outcomes) delivers it.
func (s *Server) record(o Outcome) (Import, error) {
	ctx, cancel := context.WithTimeout(s.recordCtx, recordTimeout)
	defer cancel()
	s.mu.Lock()
	if len(s.handed)+s.claiming < s.claimLimit() {
		s.claiming++
		o.Claim = &ClaimRequest{Owner: s.cfg.Instance, Token: s.token, LeaseFor: s.cfg.Notify.LeaseFor}
	}
	s.mu.Unlock()
	imp, n, err := s.finish(ctx, o)
	s.mu.Lock()
	if o.Claim != nil {
		s.claiming--
	}
	if n != nil {
		s.handed = append(s.handed, *n) // with the decrement: the backlog never looks shorter than it is
	}
	s.mu.Unlock()
	switch {
	case n != nil:
		select {
		case s.handedWake <- struct{}{}:
		default:
		}
	case err == nil:
		s.poke()
	}
	return imp, err
}

// finish calls Store.Finish, retrying failures other than ErrStateChanged
// until ctx ends.
func (s *Server) finish(ctx context.Context, o Outcome) (imp Import, n *Notification, err error) {
	err = s.retryStore(ctx, func() error {
		imp, n, err = s.cfg.Store.Finish(ctx, o)
		return err
	}, "recording an outcome failed; retrying", "repository", o.Path, "status", o.Status)
	return imp, n, err
}

// abandon calls Store.Abandon like finish calls Finish, for up to
// recordTimeout. ErrStateChanged (the run was ended elsewhere meanwhile,
// and notified there) is final.
func (s *Server) abandon(ref RunRef) error {
	ctx, cancel := context.WithTimeout(s.recordCtx, recordTimeout)
	defer cancel()
	return s.retryStore(ctx, func() error { return s.cfg.Store.Abandon(ctx, ref) },
		"abandoning a start failed; retrying", "repository", ref.Path, "run", ref.Run)
}

// retryStore calls f until it succeeds, fails with ErrStateChanged, or
// ctx ends, with capped backoff between failures (logged as msg).
func (s *Server) retryStore(ctx context.Context, f func() error, msg string, attrs ...any) error {
	retry := backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	for failed := 0; ; failed++ {
		err := f()
		if err == nil || errors.Is(err, ErrStateChanged) {
			return err
		}
		pause := retry.Delay(failed)
		s.log.WarnContext(ctx, "importserver: "+msg, append(attrs, "error", err, "retry_in", pause)...)
		if werr := wait.Sleep(ctx, pause); werr != nil {
			return fmt.Errorf("%w (then %w)", err, werr)
		}
	}
}

// takeHanded removes up to limit handed notifications, oldest first.
func (s *Server) takeHanded(limit int) []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := min(limit, len(s.handed))
	out := slices.Clone(s.handed[:k])
	s.handed = slices.Delete(s.handed, 0, k)
	return out
}

// poke wakes the delivery loop to read the outbox.
func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// reportStale logs and reports imports the store ended as stale.
func (s *Server) reportStale(ctx context.Context, ended []Import) {
	for _, imp := range ended {
		s.log.WarnContext(ctx, "importserver: stale import ended", "repository", imp.Path, "import_type", string(imp.Type),
			"run", imp.Run, "owner", imp.Owner, "status", imp.Status, "detail", imp.Detail)
		s.obs.StaleFailed(ctx, ImportEvent{Import: imp, Result: imp.Status.Result(), Recorded: true})
	}
	if len(ended) > 0 {
		s.poke()
	}
}
