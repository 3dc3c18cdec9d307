package sidekiqmove

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is what a Run did.
type Report struct {
	// DryRun reports that nothing was written: Moved counts say what would
	// have moved.
	DryRun bool
	// Passes is the number of passes made.
	Passes int
	// Done reports that the last pass found no job left to move (in a dry
	// run: that there was none to begin with).
	Done     bool
	Duration time.Duration
	// Moves counts the jobs moved per move and source key, sorted by key
	// and worker.
	Moves []MoveCount
	// Sources describes each list and sorted set scanned, in scan order.
	Sources []SourceReport
	// Malformed quotes up to Options.MaxSamples payloads the last pass could
	// not read; MalformedTotal counts them all. They were left in place.
	Malformed      []MalformedJob
	MalformedTotal int
}

// MoveCount is how many jobs of one Move left one source.
type MoveCount struct {
	Move   Move
	Source string // the Redis key: queue:<From>, schedule, retry…
	Jobs   int
}

// SourceReport describes one scanned Redis key.
type SourceReport struct {
	Key  string
	Kind string // "queue" (a list) or "set" (a sorted set)
	// Examined counts payloads read, over all passes (a job left in place
	// is read once per pass).
	Examined int
	// Moved counts jobs moved (or that would move), over all passes.
	Moved int
	// Gone counts jobs that left on their own between being read and being
	// moved (a Sidekiq server popped it, or the scheduler enqueued it):
	// neither moved nor lost.
	Gone int
	// Conflicts counts sorted-set jobs left in place because the rewritten
	// payload was already a member (merging them would lose a job).
	Conflicts int
	// Malformed counts payloads the last pass could not read, left in place.
	Malformed int
	// Stayed counts, by worker, the jobs the last pass left in place because
	// their worker does not move (in a set: jobs naming a source queue).
	Stayed map[string]int
}

func (s *SourceReport) stay(worker string) {
	if s.Stayed == nil {
		s.Stayed = map[string]int{}
	}
	s.Stayed[worker]++
}

// MalformedJob is a payload the mover could not read.
type MalformedJob struct {
	Key     string
	Payload string
	Reason  string
}

// Moved returns the jobs moved (or that would move) in total.
func (r *Report) Moved() int {
	n := 0
	for _, s := range r.Sources {
		n += s.Moved
	}
	return n
}

// WriteTo prints the report: a summary line, the jobs per move and source,
// what was left in place and why.
func (r *Report) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	verb, state := "moved", "not done: run again"
	if r.DryRun {
		verb, state = "would move", "dry run: nothing written"
	} else if r.Done {
		state = "done: nothing left to move"
	}
	rate := 0.0
	if r.Duration > 0 {
		rate = float64(r.Moved()) / r.Duration.Seconds()
	}
	fmt.Fprintf(&b, "%d jobs %s in %d %s, %s (%.0f jobs/s); %s\n", r.Moved(), verb, r.Passes, plural(r.Passes, "pass", "passes"),
		r.Duration.Round(time.Millisecond), rate, state)
	for _, mc := range r.Moves {
		fmt.Fprintf(&b, "  %s: %s %s -> %s: %d\n", mc.Source, mc.Move.Worker, mc.Move.From, mc.Move.To, mc.Jobs)
	}
	for _, s := range r.Sources {
		var notes []string
		if len(s.Stayed) > 0 {
			workers := slices.SortedFunc(maps.Keys(s.Stayed), func(a, b string) int {
				return cmp.Or(cmp.Compare(s.Stayed[b], s.Stayed[a]), cmp.Compare(a, b))
			})
			var parts []string
			total := 0
			for i, w := range workers {
				total += s.Stayed[w]
				if i < 5 {
					parts = append(parts, fmt.Sprintf("%s %d", w, s.Stayed[w]))
				}
			}
			if len(workers) > 5 {
				parts = append(parts, "…")
			}
			notes = append(notes, fmt.Sprintf("%d jobs of workers that stay (%s)", total, strings.Join(parts, ", ")))
		}
		if s.Gone > 0 {
			notes = append(notes, fmt.Sprintf("%d taken by Sidekiq before they could move (not lost)", s.Gone))
		}
		if s.Conflicts > 0 {
			notes = append(notes, fmt.Sprintf("%d left: the moved payload already exists", s.Conflicts))
		}
		if s.Malformed > 0 {
			notes = append(notes, fmt.Sprintf("%d malformed, left in place", s.Malformed))
		}
		if len(notes) > 0 {
			fmt.Fprintf(&b, "  %s: %s\n", s.Key, strings.Join(notes, "; "))
		}
	}
	for _, mj := range r.Malformed {
		p := mj.Payload
		if len(p) > 80 {
			p = p[:80] + "…"
		}
		fmt.Fprintf(&b, "  malformed in %s: %s: %q\n", mj.Key, mj.Reason, p)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// String returns what WriteTo prints.
func (r *Report) String() string {
	var b strings.Builder
	_, _ = r.WriteTo(&b)
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
