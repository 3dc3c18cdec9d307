package importservertest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ferryhq/ferry/transfer/importserver"
)

// StoreOptions tunes NewStore. The zero value is ready to use.
type StoreOptions struct {
	// Clock gives the store's time. Default time.Now.
	Clock func() time.Time
}

// Store is an in-memory importserver.Store with the same semantics as
// importserver.PostgresStore (both pass TestStore). It is safe for
// concurrent use.
type Store struct {
	clock func() time.Time

	mu      sync.Mutex
	imports map[string]importserver.Import
	outbox  []*entry // by id, ascending
	nextID  int64
}

// entry is a notification and its claim.
type entry struct {
	n           importserver.Notification
	lockedBy    string
	lockToken   string
	lockedUntil time.Time
}

var _ importserver.Store = (*Store)(nil)

// NewStore returns an empty Store.
func NewStore(opts StoreOptions) *Store {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &Store{clock: opts.Clock, imports: map[string]importserver.Import{}}
}

// Notifications returns every notification in the outbox, oldest first,
// for assertions.
func (s *Store) Notifications() []importserver.Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]importserver.Notification, len(s.outbox))
	for i, e := range s.outbox {
		out[i] = e.n
	}
	return out
}

func (s *Store) now() time.Time { return s.clock().UTC() }

// Get implements importserver.Store.
func (s *Store) Get(_ context.Context, path string) (importserver.Import, error) {
	if err := importserver.ValidatePath(path); err != nil {
		return importserver.Import{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.imports[path]
	if !ok {
		return importserver.Import{}, fmt.Errorf("%w: %s", importserver.ErrNotFound, path)
	}
	return i, nil
}

// running counts the imports in progress; s.mu is held.
func (s *Store) running() int {
	n := 0
	for _, i := range s.imports {
		if i.Status.InProgress() {
			n++
		}
	}
	return n
}

// Begin implements importserver.Store.
func (s *Store) Begin(_ context.Context, req importserver.BeginRequest) (importserver.Import, error) {
	if err := req.Validate(); err != nil {
		return importserver.Import{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	running := s.running()
	cur, ok := s.imports[req.Path]
	if !ok && req.RequireRecord {
		return importserver.Import{}, fmt.Errorf("%w: %s has no import record", importserver.ErrNotFound, req.Path)
	}
	var curp *importserver.Import
	if ok {
		curp = &cur
	}
	if reason := importserver.CheckBegin(curp, req, running); reason != nil {
		ref := &importserver.RefusedError{Reason: reason, Running: running, Current: importserver.Import{Path: req.Path}}
		if ok {
			ref.Current = cur
		}
		return importserver.Import{}, ref
	}
	now := s.now()
	next := importserver.Import{Path: req.Path, Type: req.Type, Status: req.Type.InProgress(), Run: cur.Run + 1,
		Owner: req.Owner, StartedAt: now, HeartbeatAt: now, UpdatedAt: now}
	s.imports[req.Path] = next
	for _, e := range s.outbox {
		if e.n.Path == req.Path && e.n.State == importserver.NotificationPending && e.n.Run < next.Run {
			e.n.State = importserver.NotificationSuperseded
			e.lockedBy, e.lockToken, e.lockedUntil = "", "", time.Time{}
		}
	}
	return next, nil
}

// end moves an import in progress to its terminal status and enqueues its
// notification, claimed for claim unless it is nil or an older
// notification of the repository is pending; s.mu is held.
func (s *Store) end(i importserver.Import, status importserver.Status, detail string, counts importserver.Counts,
	claim *importserver.ClaimRequest) (importserver.Import, *importserver.Notification) {
	now := s.now()
	i.Status, i.Detail, i.Counts, i.CancelRequested = status, importserver.ClipDetail(detail), counts, false
	i.FinishedAt, i.UpdatedAt = now, now
	s.imports[i.Path] = i
	if claim != nil && slices.ContainsFunc(s.outbox, func(e *entry) bool {
		return e.n.Path == i.Path && e.n.State == importserver.NotificationPending
	}) {
		claim = nil
	}
	s.nextID++
	e := &entry{n: importserver.Notification{ID: s.nextID, Path: i.Path, Run: i.Run,
		Status: status, Detail: i.Detail, State: importserver.NotificationPending, CreatedAt: now, NextAttemptAt: now}}
	s.outbox = append(s.outbox, e)
	if claim == nil {
		return i, nil
	}
	e.lockedBy, e.lockToken, e.lockedUntil = claim.Owner, claim.Token, now.Add(claim.LeaseFor)
	n := e.n
	return i, &n
}

// Finish implements importserver.Store.
func (s *Store) Finish(_ context.Context, o importserver.Outcome) (importserver.Import, *importserver.Notification, error) {
	if err := o.Validate(); err != nil {
		return importserver.Import{}, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.imports[o.Path]
	if !ok || i.Run != o.Run || i.Status != o.Status.Type().InProgress() {
		return importserver.Import{}, nil, fmt.Errorf("%w: run %d of %s is no longer in progress", importserver.ErrStateChanged, o.Run, o.Path)
	}
	i, n := s.end(i, o.Status, o.Detail, o.Counts, o.Claim)
	return i, n, nil
}

// inProgress returns the running import of path or a refusal; s.mu is held.
func (s *Store) inProgress(path string) (importserver.Import, error) {
	if err := importserver.ValidatePath(path); err != nil {
		return importserver.Import{}, err
	}
	i, ok := s.imports[path]
	if !ok {
		return importserver.Import{}, fmt.Errorf("%w: %s", importserver.ErrNotFound, path)
	}
	if !i.Status.InProgress() {
		return importserver.Import{}, &importserver.RefusedError{Reason: importserver.ErrNotInProgress, Current: i}
	}
	return i, nil
}

// Abandon implements importserver.Store.
func (s *Store) Abandon(_ context.Context, ref importserver.RunRef) error {
	if err := importserver.ValidatePath(ref.Path); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.imports[ref.Path]
	if !ok || i.Run != ref.Run || i.Run != 1 || !i.Status.InProgress() {
		return fmt.Errorf("%w: run %d of %s is not a first run in progress", importserver.ErrStateChanged, ref.Run, ref.Path)
	}
	delete(s.imports, ref.Path)
	return nil
}

// RequestCancel implements importserver.Store.
func (s *Store) RequestCancel(_ context.Context, path string) (importserver.Import, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, err := s.inProgress(path)
	if err != nil {
		return importserver.Import{}, err
	}
	i.CancelRequested, i.UpdatedAt = true, s.now()
	s.imports[path] = i
	return i, nil
}

// ForceCancel implements importserver.Store.
func (s *Store) ForceCancel(_ context.Context, path, detail string) (importserver.Import, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, err := s.inProgress(path)
	if err != nil {
		return importserver.Import{}, err
	}
	i, _ = s.end(i, i.Type.Outcome(importserver.Canceled), detail, importserver.Counts{}, nil)
	return i, nil
}

// Heartbeat implements importserver.Store.
func (s *Store) Heartbeat(_ context.Context, owner string, runs []importserver.RunRef) ([]importserver.Import, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []importserver.Import
	now := s.now()
	for _, r := range runs {
		i, ok := s.imports[r.Path]
		if !ok || i.Run != r.Run || i.Owner != owner || !i.Status.InProgress() {
			continue
		}
		i.HeartbeatAt = now
		s.imports[r.Path] = i
		out = append(out, i)
	}
	return out, nil
}

// FailStale implements importserver.Store.
func (s *Store) FailStale(_ context.Context, req importserver.StaleRequest) ([]importserver.Import, error) {
	if req.Owner == "" && req.StaleAfter <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out []importserver.Import
	for _, path := range slices.Sorted(maps.Keys(s.imports)) {
		i := s.imports[path]
		if !i.Status.InProgress() {
			continue
		}
		byOwner := req.Owner != "" && i.Owner == req.Owner
		byAge := req.StaleAfter > 0 && i.HeartbeatAt.Before(now.Add(-req.StaleAfter))
		if !byOwner && !byAge {
			continue
		}
		result := importserver.Failed
		if i.CancelRequested {
			result = importserver.Canceled
		}
		ended, _ := s.end(i, i.Type.Outcome(result), req.Detail, i.Counts, nil)
		out = append(out, ended)
	}
	return out, nil
}

// ClaimNotifications implements importserver.Store.
func (s *Store) ClaimNotifications(_ context.Context, req importserver.ClaimRequest) ([]importserver.Notification, error) {
	if req.Limit <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	first := map[string]bool{} // paths whose oldest pending notification was seen
	var due []*entry
	for _, e := range s.outbox {
		if e.n.State != importserver.NotificationPending || first[e.n.Path] {
			continue
		}
		first[e.n.Path] = true
		free := e.lockedUntil.IsZero() || e.lockedUntil.Before(now) || (e.lockedBy == req.Owner && e.lockToken != req.Token)
		if free && !e.n.NextAttemptAt.After(now) {
			due = append(due, e)
		}
	}
	slices.SortStableFunc(due, func(a, b *entry) int {
		return cmp.Or(a.n.NextAttemptAt.Compare(b.n.NextAttemptAt), cmp.Compare(a.n.ID, b.n.ID))
	})
	due = due[:min(len(due), req.Limit)]
	out := make([]importserver.Notification, len(due))
	for i, e := range due {
		e.lockedBy, e.lockToken, e.lockedUntil = req.Owner, req.Token, now.Add(req.LeaseFor)
		out[i] = e.n
	}
	slices.SortFunc(out, func(a, b importserver.Notification) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// RecordDeliveries implements importserver.Store.
func (s *Store) RecordDeliveries(_ context.Context, ds []importserver.Delivery) error {
	states := make([]importserver.NotificationState, len(ds))
	for i, d := range ds {
		switch d.Result {
		case importserver.Delivered:
			states[i] = importserver.NotificationDelivered
		case importserver.Retry:
			states[i] = importserver.NotificationPending
		case importserver.GiveUp:
			states[i] = importserver.NotificationFailed
		default:
			return fmt.Errorf("importservertest: delivery of notification %d: unknown result %q", d.ID, d.Result)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	byID := make(map[int64]*entry, len(s.outbox))
	for _, e := range s.outbox {
		byID[e.n.ID] = e
	}
	// The last attempt of a notification counts, as in one UPDATE.
	last := make(map[int64]int, len(ds))
	for i, d := range ds {
		last[d.ID] = i
	}
	for i, d := range ds {
		e := byID[d.ID]
		if last[d.ID] != i || e == nil || e.n.State != importserver.NotificationPending {
			continue
		}
		e.n.Attempts++
		if d.Refused {
			e.n.Refusals++
		}
		e.n.State, e.n.LastCode, e.n.LastError = states[i], d.Code, importserver.ClipDetail(d.Err)
		e.n.NextAttemptAt = now.Add(max(d.RetryIn, 0))
		if states[i] == importserver.NotificationDelivered {
			e.n.DeliveredAt = now
		}
		e.lockedBy, e.lockToken, e.lockedUntil = "", "", time.Time{}
	}
	return nil
}

// OutboxStats implements importserver.Store.
func (s *Store) OutboxStats(context.Context) (importserver.OutboxStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st importserver.OutboxStats
	now := s.now()
	for _, e := range s.outbox {
		switch e.n.State {
		case importserver.NotificationPending:
			st.Pending++
			st.OldestPending = max(st.OldestPending, now.Sub(e.n.CreatedAt))
		case importserver.NotificationFailed:
			st.Failed++
		}
	}
	return st, nil
}

// PruneDelivered implements importserver.Store.
func (s *Store) PruneDelivered(_ context.Context, olderThan time.Duration) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cutoff := s.now().Add(-max(olderThan, 0))
	var n int64
	s.outbox = slices.DeleteFunc(s.outbox, func(e *entry) bool {
		old := (e.n.State == importserver.NotificationDelivered && e.n.DeliveredAt.Before(cutoff)) ||
			(e.n.State == importserver.NotificationSuperseded && e.n.CreatedAt.Before(cutoff))
		if old {
			n++
		}
		return old
	})
	return n, nil
}
