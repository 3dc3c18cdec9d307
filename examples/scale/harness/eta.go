package harness

import (
	"container/heap"
	"slices"
	"time"
)

// ETA estimation.
//
// With a long tail of repository sizes the end of an import is set by its
// largest repositories, each limited by its own concurrency, not by the
// overall throughput: "blobs left / blobs per second" promises the end
// long before the largest repository can finish. Nor does a repository's
// time scale from the small ones finished early: their stages are too
// short to fill the importer's pipelines. So the estimate follows each
// repository through the stages of its import and replays the enqueuer's
// schedule:
//
//   - a pre-import reads the repository's tags, then plans and transfers
//     its blobs (about blobsPerTag × tags of them), then puts its
//     manifests; the enqueuer then starts the final import, which reads
//     the tags again and records them;
//   - the rate of each stage (tags read per second, blobs transferred per
//     second, planning seconds per blob, and so on) is measured on the
//     repositories that go through it, recent ones weighing most;
//   - a running repository's time left is what is left of its current
//     stage at its own measured rate, plus the later stages at the
//     measured rates; a waiting repository needs all stages;
//   - a repository holds one unit of the enqueuer's capacity from the start
//     of its pre-import to the end of its final import; waiting ones take
//     the first free unit in the enqueuer's order. The estimate is when
//     the last unit frees up.

// stage is where a repository's import is.
type stage int

const (
	stageWaiting   stage = iota
	stagePreTags         // pre-import: reading tags
	stagePrePlan         // pre-import: manifests and blob sizes, before the first transfer
	stagePreBlobs        // pre-import: transferring blobs, then putting manifests
	stageHandoff         // pre-import done, final import not started
	stageFinalTags       // final import: reading tags
	stageFinalTail       // final import: recording tags
	stageDone
)

// passRunning reports whether a repository in stage s has a pass running:
// from the pass's start to its end.
func (s stage) passRunning() bool {
	return s != stageWaiting && s != stageHandoff && s != stageDone
}

// rates are the stage costs measured so far. A zero field is not known
// yet.
type rates struct {
	startup     time.Duration // from a pass's start to its first tag read
	tagsPerSec  float64       // tag links read per second by one repository
	planPerBlob time.Duration // planning time per blob (manifests, blob sizes)
	blobsPerSec float64       // blobs transferred per second by one repository
	prePerTag   time.Duration // from the last transfer to the end of the pre-import, per tag
	handoff     time.Duration // from the end of a pre-import to the start of its final import
	finalPerTag time.Duration // from the last tag read to the end of the final import, per tag
	blobsPerTag float64       // blobs a repository holds per tag
}

// known reports whether every rate has been measured.
func (r rates) known() bool {
	return r.tagsPerSec > 0 && r.blobsPerSec > 0 && r.blobsPerTag > 0 && r.planPerBlob > 0
}

func perSec(units float64, rate float64) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(units / rate * float64(time.Second))
}

// etaRepo is one unfinished repository as the estimator sees it.
type etaRepo struct {
	tags  int
	order int // position in the enqueuer's queue
	stage stage
	// since is when the current stage began.
	since time.Time
	// done counts the current stage's units: tags read or blobs
	// transferred.
	done int
	// ownRate is the repository's own rate in its current stage (tags or
	// blobs per second), 0 when too little has been seen.
	ownRate float64
	// blobs is the repository's blob count when known (after planning),
	// else 0.
	blobs int
}

// remaining returns the time r still needs, from now.
func (rt rates) remaining(r etaRepo, now time.Time) time.Duration {
	t := float64(r.tags)
	blobs := float64(r.blobs)
	if blobs == 0 {
		blobs = rt.blobsPerTag * t
	}
	elapsed := now.Sub(r.since)
	rate := func(own, global float64) float64 {
		if own > 0 {
			return own
		}
		return global
	}
	left := func(total time.Duration) time.Duration { return max(total-elapsed, 0) }

	finalTail := time.Duration(t * float64(rt.finalPerTag))
	final := rt.startup + perSec(t, rt.tagsPerSec) + finalTail
	preTail := time.Duration(t * float64(rt.prePerTag))
	transfer := perSec(blobs, rt.blobsPerSec) + preTail
	plan := time.Duration(blobs * float64(rt.planPerBlob))

	switch r.stage {
	case stageWaiting:
		return rt.startup + perSec(t, rt.tagsPerSec) + plan + transfer + rt.handoff + final
	case stagePreTags:
		tags := perSec(max(t-float64(r.done), 0), rate(r.ownRate, rt.tagsPerSec))
		if r.done == 0 {
			tags = left(rt.startup) + perSec(t, rt.tagsPerSec)
		}
		return tags + plan + transfer + rt.handoff + final
	case stagePrePlan:
		return left(plan) + transfer + rt.handoff + final
	case stagePreBlobs:
		return perSec(max(blobs-float64(r.done), 0), rate(r.ownRate, rt.blobsPerSec)) + preTail + rt.handoff + final
	case stageHandoff:
		return left(rt.handoff) + final
	case stageFinalTags:
		tags := perSec(max(t-float64(r.done), 0), rate(r.ownRate, rt.tagsPerSec))
		if r.done == 0 {
			tags = left(rt.startup) + perSec(t, rt.tagsPerSec)
		}
		return tags + finalTail
	case stageFinalTail:
		return left(finalTail)
	}
	return 0
}

// estimateRemaining replays the schedule of the unfinished repositories on
// capacity slots and returns the time until the last one ends.
func estimateRemaining(now time.Time, rt rates, capacity int, unfinished []etaRepo) time.Duration {
	capacity = max(capacity, 1)
	var free slotHeap // when each slot frees up, from now
	var waiting []etaRepo
	var end time.Duration
	for _, r := range unfinished {
		if r.stage == stageWaiting {
			waiting = append(waiting, r)
			continue
		}
		d := rt.remaining(r, now)
		free = append(free, d)
		end = max(end, d)
	}
	slices.SortFunc(waiting, func(a, b etaRepo) int { return a.order - b.order })
	heap.Init(&free)
	for _, r := range waiting {
		at := time.Duration(0)
		if free.Len() >= capacity {
			at = heap.Pop(&free).(time.Duration)
		}
		done := at + rt.remaining(r, now)
		heap.Push(&free, done)
		end = max(end, done)
	}
	return end
}

// slotHeap is a min-heap of slot release times.
type slotHeap []time.Duration

func (h slotHeap) Len() int           { return len(h) }
func (h slotHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h slotHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }

func (h *slotHeap) Push(x any) { *h = append(*h, x.(time.Duration)) }

func (h *slotHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// ewma is an exponentially weighted mean that favours recent samples.
type ewma struct {
	value float64
	n     int
}

// ewmaWeight is the weight of a new sample once warmed up: the last ~10
// samples dominate.
const ewmaWeight = 0.1

func (e *ewma) add(x float64) {
	e.n++
	w := max(ewmaWeight, 1/float64(e.n))
	e.value += w * (x - e.value)
}

func (e *ewma) get() float64 {
	if e.n == 0 {
		return 0
	}
	return e.value
}
