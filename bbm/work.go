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
// ctx carries the job timeout: Do must pass it to every call and return
// when it is done. Do must touch only the rows of its batch. How often a
// batch's effects apply depends on the Work's Delivery:
//
// DeliveryExactlyOnce (the default, for Work that writes only to the
// database it is given): Do runs inside a transaction that the worker
// commits when Do returns nil and rolls back otherwise; db is that
// transaction (nil only for a worker built without a database, as in tests
// with bbmtest). The job is recorded finished inside the same transaction,
// so a range's changes commit exactly once, whatever crashes: even SET n =
// n + 1 is safe. This needs the bbm tables in the migrated table's
// database, the normal case (see ErrNotTransactional).
//
// DeliveryAtLeastOnce (declare it with WithDelivery, for Work that writes
// elsewhere: another database, object storage, an API): Do gets the
// database handle itself, with no transaction opened for it, and the job is
// recorded finished after Do returns. A worker that dies in between runs
// the range again, so Do must be idempotent: write values computed from
// the source (SET c = f(row)) or skip what is done (WHERE c IS NULL), never
// increment.
//
// Either way a failed attempt rolls back (exactly-once) and is retried, so
// effects outside the transaction must tolerate a repeat.
type Work interface {
	Name() string
	Do(ctx context.Context, db storage.Querier, b Batch) error
}

// Delivery says how often a batch's effects may apply; see Work.
type Delivery string

// Deliveries.
const (
	// DeliveryExactlyOnce runs Do in the job's transaction and records the
	// job finished in it. The default.
	DeliveryExactlyOnce Delivery = "exactly_once"
	// DeliveryAtLeastOnce runs Do outside any transaction of bbm's and
	// records the job after it; a crash in between repeats the range.
	DeliveryAtLeastOnce Delivery = "at_least_once"
)

// Valid reports whether d is a known delivery.
func (d Delivery) Valid() bool { return d == DeliveryExactlyOnce || d == DeliveryAtLeastOnce }

// DeliveryDeclarer is implemented by Work that declares its Delivery;
// Work that does not is DeliveryExactlyOnce.
type DeliveryDeclarer interface {
	Delivery() Delivery
}

// DeliveryOf returns the Delivery w declares, DeliveryExactlyOnce by default.
func DeliveryOf(w Work) Delivery {
	if d, ok := w.(DeliveryDeclarer); ok && d.Delivery().Valid() {
		return d.Delivery()
	}
	return DeliveryExactlyOnce
}

// WithDelivery returns w declaring delivery d.
func WithDelivery(w Work, d Delivery) Work { return deliveryWork{Work: w, d: d} }

type deliveryWork struct {
	Work
	d Delivery
}

func (w deliveryWork) Delivery() Delivery { return w.d }

// WorkFunc makes a Work from a name and a function; it is
// DeliveryExactlyOnce (wrap it with WithDelivery to change that).
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
		if d, ok := w.(DeliveryDeclarer); ok && !d.Delivery().Valid() {
			return fmt.Errorf("%w: %q declares delivery %q (want %s or %s)", ErrInvalidWork, name, d.Delivery(),
				DeliveryExactlyOnce, DeliveryAtLeastOnce)
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
