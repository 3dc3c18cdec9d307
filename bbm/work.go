package bbm

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"sync"

	"github.com/ferryhq/ferry/storage"
)

// Work processes one batch of a migration. A host implements it and
// registers it on a worker with Register; migrations name it by Name.
//
// Do runs inside a transaction that the worker commits when Do returns nil
// and rolls back otherwise; db is that transaction (nil only for a worker
// built without a database, as in tests with bbmtest). ctx carries the job
// timeout: Do must pass it to every call and return when it is done.
//
// Do must be idempotent: a range may be processed more than once, because
// an attempt can fail after its changes were applied elsewhere, a worker may
// die after the commit but before the job is marked finished, and failed
// jobs are retried. Writing a value computed from the row (SET c = f(row))
// rather than an increment, or filtering with WHERE c IS NULL, makes a
// batch safe to run again. Do must touch only the rows in [Start, End].
type Work interface {
	Name() string
	Do(ctx context.Context, db storage.Querier, b Batch) error
}

// WorkFunc makes a Work from a name and a function.
func WorkFunc(name string, fn func(ctx context.Context, db storage.Querier, b Batch) error) Work {
	return workFunc{name: name, fn: fn}
}

type workFunc struct {
	name string
	fn   func(ctx context.Context, db storage.Querier, b Batch) error
}

func (w workFunc) Name() string { return w.name }

func (w workFunc) Do(ctx context.Context, db storage.Querier, b Batch) error {
	return w.fn(ctx, db, b)
}

// namePattern is what migration and Work names may look like: they end up
// in logs and metrics labels, so keep them plain.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$`)

// workSet is the Work registered on one worker.
type workSet struct {
	mu    sync.RWMutex
	works map[string]Work
}

func (s *workSet) register(works ...Work) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.works == nil {
		s.works = map[string]Work{}
	}
	seen := map[string]bool{}
	for i, w := range works {
		if w == nil {
			return fmt.Errorf("%w: work %d is nil", ErrInvalidWork, i)
		}
		name := w.Name()
		if !namePattern.MatchString(name) {
			return fmt.Errorf("%w: name %q: use 1-200 letters, digits and _.:/-", ErrInvalidWork, name)
		}
		if _, dup := s.works[name]; dup || seen[name] {
			return fmt.Errorf("%w: %q", ErrDuplicateWork, name)
		}
		seen[name] = true
	}
	for _, w := range works {
		s.works[w.Name()] = w
	}
	return nil
}

func (s *workSet) get(name string) (Work, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	w, ok := s.works[name]
	return w, ok
}

func (s *workSet) names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.works))
	for n := range s.works {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
