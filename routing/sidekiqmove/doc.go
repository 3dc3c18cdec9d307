// Package sidekiqmove moves the Sidekiq jobs of workers whose queue changed
// from their old queue to the new one, in Redis, while Sidekiq keeps running:
// step 3 of a routing rollout (routing.Plan) done instead of waited for.
//
// Sidekiq keeps waiting jobs in a list per queue (queue:<name>, clients
// LPUSH, servers pop from the other end), and jobs scheduled for later or
// waiting for a retry in the sorted sets schedule and retry, whose JSON
// payloads name the queue they will be pushed to ("queue"). The set
// "queues" lists the queue names in use. For every Move (a worker class,
// its old queue, its new queue) the Mover
//
//   - scans queue:<From> from its oldest job and moves each job of a moving
//     worker (payload "class", or "wrapped" for ActiveJob) to queue:<To>,
//     with its payload's "queue" rewritten, removing it from the old list and
//     pushing it to the new one in one Lua script (LREM of that exact
//     payload, then LPUSH), so a job is in exactly one list at every moment
//     and a job a server popped meanwhile is simply not moved;
//   - scans the sorted sets and rewrites the "queue" of each job naming
//     From, keeping its score, in one script per batch (ZSCORE, ZREM, ZADD);
//     the scheduler then pushes it to To;
//   - never writes a job of a worker that does not move, and leaves payloads
//     it cannot read where they are, counted in the Report with samples.
//
// Only the "queue" value's bytes change in a payload: arguments, numbers and
// key order stay exactly as Sidekiq wrote them. Runs repeat passes until a
// pass finds nothing to move. A run killed at any point (kill -9 included)
// leaves every job in one place, and running again finishes the work.
// Options give a dry run, a rate limit, a key namespace, progress through an
// Observer (in pgx's tracer shape like every Ferry package's hooks:
// PassStart/PassEnd around each pass, Progressed after each batch), and a
// report.
//
// Run it after servers listen to the new queues and clients route to them
// (steps 1 and 2 of the plan), so that nothing pushes new jobs to the old
// queues. Sidekiq in Redis Cluster is not supported (the scripts touch
// several keys), nor are private per-process queues of reliable-fetch
// setups: jobs already fetched by a server are its to finish.
//
// The package depends on go-redis; package routing does not.
package sidekiqmove
