package enqueuertest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ferryhq/ferry/enqueuer"
)

// StoreOptions tunes NewStore. The zero value is ready to use.
type StoreOptions struct {
	// Clock gives the time recorded when a Change or NewRepository has
	// none. Default time.Now.
	Clock func() time.Time
}

// Store is an in-memory enqueuer.Store. It behaves like
// enqueuer.PostgresStore (it passes TestStore), including the microsecond
// precision of recorded times. It is safe for concurrent use.
type Store struct {
	clock func() time.Time

	mu     sync.Mutex
	byID   map[int64]enqueuer.Repository
	byPath map[string]int64
	lastID int64
}

var _ enqueuer.Store = (*Store)(nil)

// NewStore returns an empty Store.
func NewStore(opts StoreOptions) *Store {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &Store{clock: opts.Clock, byID: map[int64]enqueuer.Repository{}, byPath: map[string]int64{}}
}

// stamp is t as Postgres keeps it.
func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func (s *Store) now(t time.Time) time.Time {
	if t.IsZero() {
		t = s.clock()
	}
	return stamp(t)
}

// Add implements enqueuer.Store.
func (s *Store) Add(ctx context.Context, nr enqueuer.NewRepository) (enqueuer.Repository, error) {
	if err := ctx.Err(); err != nil {
		return enqueuer.Repository{}, err
	}
	if err := nr.Validate(); err != nil {
		return enqueuer.Repository{}, err
	}
	created := s.now(nr.CreatedAt)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byPath[nr.Path]; ok {
		return enqueuer.Repository{}, fmt.Errorf("%w: %s", enqueuer.ErrExists, nr.Path)
	}
	s.lastID++
	r := enqueuer.Repository{
		ID: s.lastID, Path: nr.Path, State: enqueuer.StateDefault, TagCount: nr.TagCount, Priority: nr.Priority, Version: 1,
		CreatedAt: created, UpdatedAt: created, StateChangedAt: created,
	}
	s.byID[r.ID] = r
	s.byPath[r.Path] = r.ID
	return r, nil
}

// Get implements enqueuer.Store.
func (s *Store) Get(ctx context.Context, path string) (enqueuer.Repository, error) {
	if err := ctx.Err(); err != nil {
		return enqueuer.Repository{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byPath[path]
	if !ok {
		return enqueuer.Repository{}, fmt.Errorf("%w: %s", enqueuer.ErrNotFound, path)
	}
	return s.byID[id], nil
}

// Transition implements enqueuer.Store.
func (s *Store) Transition(ctx context.Context, c enqueuer.Change) (enqueuer.Repository, error) {
	if err := ctx.Err(); err != nil {
		return enqueuer.Repository{}, err
	}
	if _, err := enqueuer.Next(c.From, c.Event); err != nil {
		return enqueuer.Repository{}, err
	}
	at := s.now(c.At)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byID[c.ID]
	if !ok {
		return enqueuer.Repository{}, fmt.Errorf("%w: id %d", enqueuer.ErrNotFound, c.ID)
	}
	next, err := r.Apply(c, at)
	if err != nil {
		return enqueuer.Repository{}, err
	}
	s.byID[r.ID] = next
	return next, nil
}

// Revert implements enqueuer.Store.
func (s *Store) Revert(ctx context.Context, changed, before enqueuer.Repository) (enqueuer.Repository, error) {
	if err := ctx.Err(); err != nil {
		return enqueuer.Repository{}, err
	}
	if !before.State.Valid() {
		return enqueuer.Repository{}, fmt.Errorf("enqueuer: revert of repository %d to unknown state %q", before.ID, before.State)
	}
	at := s.now(time.Time{})
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byID[changed.ID]
	if !ok {
		return enqueuer.Repository{}, fmt.Errorf("%w: id %d", enqueuer.ErrNotFound, changed.ID)
	}
	next, err := r.RevertTo(changed, before, at)
	if err != nil {
		return enqueuer.Repository{}, err
	}
	s.byID[r.ID] = next
	return next, nil
}

// CountInProgress implements enqueuer.Store.
func (s *Store) CountInProgress(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.byID {
		if r.State.InProgress() {
			n++
		}
	}
	return n, nil
}

// Count implements enqueuer.Store.
func (s *Store) Count(ctx context.Context) (enqueuer.Counts, error) {
	if err := ctx.Err(); err != nil {
		return enqueuer.Counts{}, err
	}
	c := enqueuer.Counts{States: make(map[enqueuer.State]int, len(enqueuer.States))}
	for _, st := range enqueuer.States {
		c.States[st] = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.byID {
		c.States[r.State]++
		if r.DeferReason != "" {
			c.Deferred++
		}
	}
	return c, nil
}

// List implements enqueuer.Store.
func (s *Store) List(ctx context.Context, opts enqueuer.ListOptions) ([]enqueuer.Repository, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	compare, err := opts.Order.Comparator()
	if err != nil {
		return nil, err
	}
	match := opts.Matcher()
	s.mu.Lock()
	var out []enqueuer.Repository
	for _, r := range s.byID {
		if match(r) {
			out = append(out, r)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, compare)
	if len(out) > opts.Limit {
		out = out[:opts.Limit]
	}
	return out, nil
}

// Defer implements enqueuer.Store.
func (s *Store) Defer(ctx context.Context, d enqueuer.Deferral) (enqueuer.Repository, error) {
	if err := ctx.Err(); err != nil {
		return enqueuer.Repository{}, err
	}
	if err := d.Validate(); err != nil {
		return enqueuer.Repository{}, err
	}
	at := s.now(d.At)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byID[d.ID]
	if !ok {
		return enqueuer.Repository{}, fmt.Errorf("%w: id %d", enqueuer.ErrNotFound, d.ID)
	}
	next, err := r.ApplyDeferral(d, at)
	if err != nil {
		return enqueuer.Repository{}, err
	}
	s.byID[r.ID] = next
	return next, nil
}

// Reconsider implements enqueuer.Store.
func (s *Store) Reconsider(ctx context.Context, keep string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	at := s.now(time.Time{})
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, r := range s.byID {
		if r.DeferReason == "" || r.DeferKey == keep {
			continue
		}
		r.DeferReason, r.DeferKey, r.DeferredAt = "", "", time.Time{}
		r.Version++
		r.UpdatedAt = at
		s.byID[id] = r
		n++
	}
	return n, nil
}

// SetPriority implements enqueuer.Store.
func (s *Store) SetPriority(ctx context.Context, p enqueuer.PriorityChange) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := p.Validate(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byPath[p.Path]; p.Path != "" && !ok {
		return 0, fmt.Errorf("%w: %s", enqueuer.ErrNotFound, p.Path)
	}
	n := 0
	for id, r := range s.byID {
		if p.Match(r) && r.Priority != p.Priority {
			r.Priority = p.Priority
			s.byID[id] = r
			n++
		}
	}
	return n, nil
}

// LastStarted implements enqueuer.Store.
func (s *Store) LastStarted(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var last time.Time
	for _, r := range s.byID {
		if r.PreImportingAt.After(last) {
			last = r.PreImportingAt
		}
	}
	return last, nil
}

// All returns every repository, by ID.
func (s *Store) All() []enqueuer.Repository {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]enqueuer.Repository, 0, len(s.byID))
	for _, r := range s.byID {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b enqueuer.Repository) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
