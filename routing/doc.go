// Package routing decides which queue each background worker's jobs go to,
// using the worker-attribute selector language and ordered routing rules of
// Rails/Sidekiq deployments, and plans zero-downtime changes of those rules.
//
// # Worker metadata
//
// A Worker is one worker class with the attributes deployments keep in
// all_queues.yml: class name, current queue name, feature category, urgency,
// resource boundary, external dependencies, tags, queue namespace, weight and
// idempotency, plus two rollout flags (DependsOnQueueName, LimitedCapacity).
// ReadWorkers reads that file format; MergeWorkers joins several files.
//
// # Selectors
//
// Parse turns a query such as
//
//	feature_category=global_search&urgency=throttled|tags=search
//
// into a Selector: alternatives separated by "|", each a conjunction of terms
// joined by "&"; a term is attribute=value[,value…] (equals any) or
// attribute!=value[,value…] (equals none); "*" alone matches everything.
// Selector.String gives a canonical form that parses back to the same
// selector. Errors are *SyntaxError values with the byte offset at fault.
//
// # Rules and routers
//
// A Router holds an ordered list of Rule values; the first rule whose query
// matches a worker gives its queue, an empty queue meaning the worker's
// generated name (GeneratedQueueName), and Options.DefaultQueue applies when
// none matches. ParseRules reads rules from the usual JSON or YAML
// [[query, queue], …] configuration. Router.Route is cached per worker ID and
// allocation-free on a hit; Router.Table routes many workers at once, and
// Diff compares two tables.
//
// # Rolling out new rules
//
// Moving workers to other queues without losing jobs needs a fixed order:
// servers listen to old and new queues before any client routes to the new
// ones, then clients switch, old queues drain, and servers stop listening to
// them. Plan computes those four steps for a pair of routers, prints the
// server groups as a sidekiq-cluster --dryrun command line, and warns about
// moving workers that use their own queue name or limit their own capacity.
//
// Everything here is pure computation over values: no I/O beyond the
// io.Reader given to ReadWorkers, no goroutines, no global state.
package routing
