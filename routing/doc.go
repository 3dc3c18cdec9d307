// Package routing decides which queue each background worker's jobs go to,
// with the worker selectors and ordered routing rules of GitLab's Sidekiq
// setup, reproduced exactly, and plans zero-downtime changes of those rules.
//
// # GitLab mode: the same answers as GitLab
//
// By default everything here reads and answers as GitLab's WorkerMatcher,
// WorkerRouter and all_queues.yml do, including what GitLab accepts silently,
// so a deployment migrating off GitLab's Ruby code gets the routes it has
// today:
//
//   - Parse splits selectors as Ruby's String#split does and matches terms
//     with GitLab's pattern, so "urgency=high " reads as urgency=high,
//     "feature_category=add-on_provisioning" as feature_category=add, "" as
//     nothing and "|urgency=high" as every worker; what GitLab rejects is a
//     *SyntaxError of kind InvalidTerm or UnknownAttribute.
//   - Worker keeps what GitLab's selector tells apart: nil attributes
//     (Worker.Nil) and Strings where Symbols are expected (Worker.Strings),
//     as on GitLab's dummy entries "default" and "mailers"
//     (Worker.IsDummy, DummyWorkers), which selectors match but the router
//     never routes.
//   - ParseRules types YAML values as Ruby's YAML library does (yes is true,
//     :name a Symbol) and refuses what WorkerRouter.new refuses: a null or
//     non-list document, a rule that is not a pair, a non-string selector.
//     A blank queue means the worker's generated name (GeneratedQueueName,
//     ActiveSupport's underscore), which reproduces the name of every one of
//     GitLab's 1,151 workers.
//   - SelectQueues and ClusterQueueGroups give the queues sidekiq-cluster
//     --queue-selector [--negate] would listen to.
//
// # Strict mode and the linter
//
// Lint and LintRules report everything GitLab rejects, everything it accepts
// while it is almost certainly a mistake (trailing characters, empty
// alternatives or values, a leading colon, a selector matching no worker, a
// rule after a catch-all, a queue that is not a string), and for each
// Finding how GitLab reads it. ParseStrict and ParseRulesStrict turn those
// findings into errors wrapping ErrStrict. Every error and finding carries a
// Problem kind, so callers never match message text.
//
// # Routers and rollouts
//
// A Router holds an ordered list of Rule values; the first rule whose
// selector matches a worker gives its queue. Router.Route is cached per
// worker and allocation-free on a hit; Router.Table routes many workers at
// once, and Diff compares two tables. Moving workers to other queues
// without losing jobs needs a fixed order: servers listen to old and new
// queues before any client routes to the new ones, then clients switch,
// old queues drain, and servers stop listening to them. Plan computes those
// four steps for a pair of routers, prints the server groups as a
// sidekiq-cluster --dryrun command line, and warns about moving workers that
// use their own queue name or limit their own capacity. Package
// routing/sidekiqmove moves the jobs already queued, scheduled or waiting
// for a retry in Redis (step 3).
//
// Everything here is pure computation over values: no I/O beyond the
// io.Reader given to ReadWorkers, no goroutines, no global state.
package routing
