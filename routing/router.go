package routing

import (
	"fmt"
	"slices"
)

// Options configures a Router. The zero value is ready to use and routes
// exactly as GitLab's WorkerRouter.
type Options struct {
	// DefaultQueue receives workers that no rule matches. Empty (the default,
	// and GitLab's behaviour) sends each such worker to its generated queue
	// name. Setting it departs from GitLab, which has no such option: write a
	// final ["*", "default"] rule instead to stay GitLab-compatible.
	DefaultQueue string

	// CacheSize bounds how many workers' routes Route remembers (a few
	// hundred bytes each). Zero means 10,000; a negative value disables the
	// cache. When the cache is full it is emptied and refills from later calls.
	CacheSize int
}

const defaultCacheSize = 10_000

// Router sends workers to queues by an ordered list of rules: the first rule
// whose selector matches a worker decides its queue. A Router is immutable
// apart from its cache and safe for concurrent use.
type Router struct {
	rules        []Rule
	compiled     []compiledRule
	defaultQueue string
	cache        *routeCache // nil when disabled
}

// NewRouter compiles rules as GitLab's WorkerRouter.new does: every query is
// parsed (see Parse), including those after a catch-all, and a rule whose
// query does not parse is a *RuleError naming its index and the problem's
// Kind. Queue names are used as given; a blank one means the generated name.
// An invalid Options.DefaultQueue wraps ErrInvalidQueue. opts may be nil.
func NewRouter(rules []Rule, opts *Options) (*Router, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.DefaultQueue != "" && !validQueueName(o.DefaultQueue) {
		return nil, fmt.Errorf("%w: Options.DefaultQueue %q: use letters, digits and _:.-/", ErrInvalidQueue, o.DefaultQueue)
	}
	r := &Router{
		rules:        slices.Clone(rules),
		compiled:     make([]compiledRule, len(rules)),
		defaultQueue: o.DefaultQueue,
	}
	for i, rule := range rules {
		c, err := compileRule(rule)
		if err != nil {
			re := &RuleError{Index: i, Err: err}
			if se, ok := err.(*SyntaxError); ok {
				re.Kind = se.Kind
			}
			return nil, re
		}
		r.compiled[i] = c
	}
	switch {
	case o.CacheSize == 0:
		r.cache = newRouteCache(defaultCacheSize)
	case o.CacheSize > 0:
		r.cache = newRouteCache(o.CacheSize)
	}
	return r, nil
}

// Rules returns a copy of the router's rules, in order.
func (r *Router) Rules() []Rule { return slices.Clone(r.rules) }

// Route returns the queue for w as GitLab's WorkerRouter#route does: the
// queue of the first rule whose selector matches (the generated queue name
// when that rule's queue is blank), or, when no rule matches, the generated
// queue name (or Options.DefaultQueue when set). GitLab's dummy entries (see
// Worker.IsDummy) are never routed: Route returns their own QueueName
// ("default" or "mailers"), the queue their jobs always use.
//
// Results are cached with w.ID() as the key. A cached result is used only when
// every attribute that routing reads (the selector attributes and the class
// name and namespace behind generated names) equals the copy stored with it,
// so a worker whose metadata changed is routed afresh, never by stale data;
// Weight, Idempotent and the rollout flags never change a route and are not
// compared. Cache hits take no locks and do not allocate; they are fastest
// when the same Worker value (the same strings) is routed again, as when
// workers come from a registry.
func (r *Router) Route(w Worker) string {
	if r.cache == nil {
		return r.route(&w)
	}
	if q, ok := r.cache.get(&w); ok {
		return q
	}
	q := r.route(&w)
	r.cache.put(&w, q)
	return q
}

// route evaluates the rules without the cache.
func (r *Router) route(w *Worker) string {
	if w.IsDummy() {
		return w.QueueName
	}
	for i := range r.compiled {
		c := &r.compiled[i]
		if c.sel.match(w) {
			if c.queue == "" {
				return GeneratedQueueName(*w)
			}
			return c.queue
		}
	}
	if r.defaultQueue != "" {
		return r.defaultQueue
	}
	return GeneratedQueueName(*w)
}
