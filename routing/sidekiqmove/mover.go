package sidekiqmove

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// ErrInvalidMove is wrapped by New's errors about the moves or options.
var ErrInvalidMove = errors.New("sidekiqmove: invalid move")

// Options configures a Mover. The zero value moves queued, scheduled and
// retry jobs of a Sidekiq without a key namespace, as fast as Redis allows,
// in batches of 100, for at most 10 passes.
type Options struct {
	// Namespace prefixes every key, for Sidekiq set up with redis-namespace
	// (GitLab used "resque:gitlab:"). Empty by default.
	Namespace string
	// Sets are the sorted sets whose payloads name a queue: by default
	// "schedule" and "retry". Add "dead" to move the morgue's jobs too, so
	// that a retry from the dead set goes to the new queue.
	Sets []string
	// DryRun only counts: nothing is written, and the run makes one pass.
	DryRun bool
	// BatchSize is how many jobs one window reads and one script moves.
	// Default 100. A script blocks Redis while it runs, so keep it small.
	BatchSize int
	// Rate caps moved jobs per second; 0 (the default) does not limit.
	Rate float64
	// MaxPasses bounds the passes; a run ends earlier, done, after a pass
	// that found nothing to move. Default 10.
	MaxPasses int
	// MaxSamples bounds the malformed payloads the Report quotes. Default
	// 20; every one is counted.
	MaxSamples int
	// Observer is told about every batch and pass; nil for none.
	Observer Observer
	// Logger receives one line per pass; nil discards.
	Logger *slog.Logger
}

// Mover moves Sidekiq jobs of workers whose queue changed from their old
// queue to the new one, in Redis: jobs waiting in the list queue:<From>,
// and jobs in the sorted sets (schedule, retry) whose payload names From.
// Every job is moved by one Lua script, so that it is in exactly one place
// at every moment, while Sidekiq clients keep pushing and servers keep
// popping; jobs of workers that do not move are never written; payloads
// that cannot be read are reported and left where they are. A Mover is
// safe to Run again: a run that was killed midway loses nothing, and the
// next run finishes the work.
type Mover struct {
	client  redis.UniversalClient
	opts    Options
	moves   []Move
	byFrom  map[string]map[string]string // from queue → worker → to queue
	froms   []string                     // the source queues, sorted
	limiter *rate.Limiter                // nil without a rate
	// tombstone marks jobs inside one move script; it cannot be a JSON
	// payload, and no tombstone outlives the script.
	tombstone string
}

// New checks the moves and options and returns a Mover. Every Move needs a
// worker and two different queues, and a worker cannot move from one queue
// to two. opts may be nil.
func New(client redis.UniversalClient, moves []Move, opts *Options) (*Mover, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil Redis client", ErrInvalidMove)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Sets == nil {
		o.Sets = []string{"schedule", "retry"}
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.MaxPasses <= 0 {
		o.MaxPasses = 10
	}
	if o.MaxSamples <= 0 {
		o.MaxSamples = 20
	}
	if o.Rate < 0 {
		return nil, fmt.Errorf("%w: negative Rate %v", ErrInvalidMove, o.Rate)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, s := range o.Sets {
		if s == "" {
			return nil, fmt.Errorf("%w: empty set name in Options.Sets", ErrInvalidMove)
		}
	}
	m := &Mover{client: client, opts: o, moves: slices.Clone(moves), byFrom: map[string]map[string]string{},
		tombstone: "\x00ferry-sidekiqmove-tombstone-" + rand.Text()}
	for i, mv := range moves {
		switch {
		case mv.Worker == "" || mv.From == "" || mv.To == "":
			return nil, fmt.Errorf("%w: move %d (%s): worker, From and To are required", ErrInvalidMove, i, mv)
		case mv.From == mv.To:
			return nil, fmt.Errorf("%w: move %d (%s): From and To are the same queue", ErrInvalidMove, i, mv)
		}
		targets := m.byFrom[mv.From]
		if targets == nil {
			targets = map[string]string{}
			m.byFrom[mv.From] = targets
			m.froms = append(m.froms, mv.From)
		}
		if to, dup := targets[mv.Worker]; dup && to != mv.To {
			return nil, fmt.Errorf("%w: %s moves from %s to both %s and %s", ErrInvalidMove, mv.Worker, mv.From, to, mv.To)
		}
		targets[mv.Worker] = mv.To
	}
	slices.Sort(m.froms)
	if o.Rate > 0 {
		m.limiter = rate.NewLimiter(rate.Limit(o.Rate), o.BatchSize)
	}
	return m, nil
}

// Run makes passes over the source queues and the sorted sets until a pass
// finds nothing left to move (Report.Done), Options.MaxPasses is reached, or
// ctx ends. It returns the report so far with any error; a Redis error
// stops the run where it was, with every job in one place.
func (m *Mover) Run(ctx context.Context) (*Report, error) {
	r := &run{m: m, start: time.Now(), rep: &Report{DryRun: m.opts.DryRun}, sources: map[string]*SourceReport{}}
	for pass := 1; pass <= m.opts.MaxPasses; pass++ {
		sum, err := r.observedPass(ctx, pass)
		r.rep.Passes = pass
		r.rep.Duration = time.Since(r.start)
		if err != nil {
			return r.report(), err
		}
		m.opts.Logger.InfoContext(ctx, "sidekiqmove: pass done", slog.Int("pass", pass), slog.Int("examined", sum.Examined),
			slog.Int("moved", sum.Moved), slog.Int("gone", sum.Gone), slog.Int("conflicts", sum.Conflicts),
			slog.Int("malformed", sum.Malformed), slog.Bool("dry_run", m.opts.DryRun), slog.Duration("duration", sum.Duration))
		if sum.NothingToMove {
			r.rep.Done = true
			break
		}
		if m.opts.DryRun {
			break
		}
	}
	return r.report(), nil
}

// run is the state of one Run.
type run struct {
	m       *Mover
	start   time.Time
	rep     *Report
	sources map[string]*SourceReport
	order   []string
	total   Progress
	pass1   PassSummary // the current pass
	moved   map[moveKey]int
	samples []MalformedJob
}

type moveKey struct {
	move   Move
	source string
}

// pending is one job about to move.
type pending struct {
	old, new string
	move     Move
	at       int64 // a queued job's negative index in its list when read
}

func (r *run) source(key, kind string) *SourceReport {
	s := r.sources[key]
	if s == nil {
		s = &SourceReport{Key: key, Kind: kind}
		r.sources[key] = s
		r.order = append(r.order, key)
	}
	return s
}

// observedPass runs a pass between the Observer's PassStart and PassEnd.
func (r *run) observedPass(ctx context.Context, pass int) (PassSummary, error) {
	obs := r.m.opts.Observer
	if obs == nil {
		return r.pass(ctx, pass)
	}
	ctx = obs.PassStart(ctx, PassStartEvent{Pass: pass})
	sum, err := r.pass(ctx, pass)
	sum.Err = err
	obs.PassEnd(ctx, sum)
	return sum, err
}

func (r *run) pass(ctx context.Context, pass int) (PassSummary, error) {
	started := time.Now()
	r.pass1 = PassSummary{Pass: pass}
	r.samples = r.samples[:0]
	for _, s := range r.sources {
		// Jobs left in place describe the state after the last pass.
		s.Stayed, s.Malformed = nil, 0
	}
	for _, from := range r.m.froms {
		if err := r.passList(ctx, from); err != nil {
			return r.pass1, err
		}
	}
	for _, set := range r.m.opts.Sets {
		if err := r.passSet(ctx, set); err != nil {
			return r.pass1, err
		}
	}
	r.pass1.Duration = time.Since(started)
	if r.m.opts.DryRun {
		r.pass1.NothingToMove = r.pass1.Moved == 0
	} else {
		r.pass1.NothingToMove = r.pass1.Moved == 0 && r.pass1.Conflicts == 0
	}
	return r.pass1, nil
}

// passList scans queue:<from> from the oldest job to the newest it held when
// the pass began, moving the jobs of moving workers.
func (r *run) passList(ctx context.Context, from string) error {
	m := r.m
	key := m.opts.Namespace + "queue:" + from
	src := r.source(key, "queue")
	targets := m.byFrom[from]
	length, err := m.client.LLen(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("sidekiqmove: LLEN %s: %w", key, err)
	}
	anchor, kept := "", 0
	for examined := 0; examined < int(length); {
		res, err := listWindow.Run(ctx, m.client, []string{key}, anchor, kept, m.opts.BatchSize).Slice()
		if err != nil {
			return fmt.Errorf("sidekiqmove: reading %s: %w", key, err)
		}
		stop, _ := res[0].(int64)
		items, _ := res[1].([]any)
		if len(items) == 0 {
			break
		}
		examined += len(items)
		kept = int(-stop - 1)
		keptHere, newAnchor := 0, ""
		var batch []pending
		for i := len(items) - 1; i >= 0; i-- { // oldest first
			raw, _ := items[i].(string)
			r.examine(src)
			j, err := parseJob(raw)
			if err != nil {
				r.malformed(src, raw, err)
				keptHere, newAnchor = keptHere+1, raw
				continue
			}
			to, moving := targets[j.worker]
			if !moving {
				src.stay(j.worker)
				keptHere, newAnchor = keptHere+1, raw
				continue
			}
			if m.opts.DryRun {
				keptHere, newAnchor = keptHere+1, raw
			}
			at := stop - int64(len(items)-1-i)
			batch = append(batch, pending{old: raw, new: j.withQueue(raw, to), move: Move{Worker: j.worker, From: from, To: to}, at: at})
		}
		if newAnchor != "" {
			anchor, kept = newAnchor, kept+keptHere
		}
		if err := r.moveList(ctx, src, key, batch); err != nil {
			return err
		}
		r.progress(ctx, key)
	}
	return nil
}

// admit decides whether a batch is written: in a dry run it only counts
// the batch; otherwise it waits for the rate limit.
func (r *run) admit(ctx context.Context, src *SourceReport, batch []pending) (write bool, err error) {
	if len(batch) == 0 {
		return false, nil
	}
	if r.m.opts.DryRun {
		for _, p := range batch {
			r.count(src, p.move, 1)
		}
		return false, nil
	}
	if r.m.limiter == nil {
		return true, ctx.Err()
	}
	if err := r.m.limiter.WaitN(ctx, len(batch)); err != nil {
		return false, fmt.Errorf("sidekiqmove: %w", err)
	}
	return true, nil
}

func (r *run) moveList(ctx context.Context, src *SourceReport, key string, batch []pending) error {
	if write, err := r.admit(ctx, src, batch); !write {
		return err
	}
	keys := []string{key, r.m.opts.Namespace + "queues"}
	var names []any
	index := map[string]int{}
	args := make([]any, 0, 2+4*len(batch)+4)
	args = append(args, len(batch), r.m.tombstone)
	for _, p := range batch {
		t, ok := index[p.move.To]
		if !ok {
			t = len(keys) + 1 // Lua's 1-based index into KEYS
			index[p.move.To] = t
			keys = append(keys, r.m.opts.Namespace+"queue:"+p.move.To)
			names = append(names, p.move.To)
		}
		args = append(args, t, p.at, p.old, p.new)
	}
	args = append(args, names...)
	flags, err := moveListJobs.Run(ctx, r.m.client, keys, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("sidekiqmove: moving jobs from %s: %w", key, err)
	}
	return r.settle(src, batch, flags)
}

// passSet rewrites the members of a sorted set whose payload names a source
// queue and a worker moving from it.
func (r *run) passSet(ctx context.Context, set string) error {
	m := r.m
	key := m.opts.Namespace + set
	src := r.source(key, "set")
	var cursor uint64
	for {
		kv, next, err := m.client.ZScan(ctx, key, cursor, "", int64(m.opts.BatchSize)).Result()
		if err != nil {
			return fmt.Errorf("sidekiqmove: ZSCAN %s: %w", key, err)
		}
		var batch []pending
		for i := 0; i+1 < len(kv); i += 2 { // member, score
			raw := kv[i]
			r.examine(src)
			j, err := parseJob(raw)
			if err != nil {
				r.malformed(src, raw, err)
				continue
			}
			targets := m.byFrom[j.queue]
			to, moving := targets[j.worker]
			if !moving {
				if targets != nil {
					src.stay(j.worker)
				}
				continue
			}
			batch = append(batch, pending{old: raw, new: j.withQueue(raw, to), move: Move{Worker: j.worker, From: j.queue, To: to}})
		}
		for len(batch) > 0 {
			n := min(len(batch), m.opts.BatchSize)
			if err := r.moveSet(ctx, src, key, batch[:n]); err != nil {
				return err
			}
			batch = batch[n:]
		}
		r.progress(ctx, key)
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

func (r *run) moveSet(ctx context.Context, src *SourceReport, key string, batch []pending) error {
	if write, err := r.admit(ctx, src, batch); !write {
		return err
	}
	args := make([]any, 0, 2*len(batch))
	for _, p := range batch {
		args = append(args, p.old, p.new)
	}
	flags, err := moveSetJobs.Run(ctx, r.m.client, []string{key}, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("sidekiqmove: moving jobs in %s: %w", key, err)
	}
	return r.settle(src, batch, flags)
}

// settle records what a move script did with each job.
func (r *run) settle(src *SourceReport, batch []pending, flags []int64) error {
	if len(flags) != len(batch) {
		return fmt.Errorf("sidekiqmove: %s: script answered %d flags for %d jobs", src.Key, len(flags), len(batch))
	}
	for i, f := range flags {
		switch f {
		case 1:
			r.count(src, batch[i].move, 1)
		case 2:
			src.Conflicts++
			r.pass1.Conflicts++
		default:
			src.Gone++
			r.pass1.Gone++
			r.total.Gone++
		}
	}
	return nil
}

func (r *run) examine(src *SourceReport) {
	src.Examined++
	r.pass1.Examined++
	r.total.Examined++
}

func (r *run) count(src *SourceReport, mv Move, n int) {
	src.Moved += n
	r.pass1.Moved += n
	r.total.Moved += n
	if r.moved == nil {
		r.moved = map[moveKey]int{}
	}
	r.moved[moveKey{mv, src.Key}] += n
}

func (r *run) malformed(src *SourceReport, raw string, err error) {
	src.Malformed++
	r.pass1.Malformed++
	r.total.Malformed++
	if len(r.samples) < r.m.opts.MaxSamples {
		r.samples = append(r.samples, MalformedJob{Key: src.Key, Payload: raw, Reason: err.Error()})
	}
}

func (r *run) progress(ctx context.Context, key string) {
	if r.m.opts.Observer == nil {
		return
	}
	p := r.total
	p.Pass, p.Source, p.Elapsed = r.pass1.Pass, key, time.Since(r.start)
	r.m.opts.Observer.Progressed(ctx, p)
}

func (r *run) report() *Report {
	rep := r.rep
	rep.Sources = rep.Sources[:0]
	for _, key := range r.order {
		rep.Sources = append(rep.Sources, *r.sources[key])
	}
	rep.Moves = rep.Moves[:0]
	for k, n := range r.moved {
		rep.Moves = append(rep.Moves, MoveCount{Move: k.move, Source: k.source, Jobs: n})
	}
	slices.SortFunc(rep.Moves, func(a, b MoveCount) int {
		if c := cmp.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return cmp.Compare(a.Move.Worker, b.Move.Worker)
	})
	rep.Malformed = slices.Clone(r.samples)
	rep.MalformedTotal = r.pass1.Malformed
	return rep
}
