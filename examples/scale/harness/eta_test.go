package harness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Stage costs of a toy import: 10 tags/s, 100 blobs/s, 2 blobs per tag,
// 1 ms of planning per blob, nothing else.
var toyRates = rates{tagsPerSec: 10, blobsPerSec: 100, blobsPerTag: 2, planPerBlob: time.Millisecond}

func TestRemainingFollowsTheStages(t *testing.T) {
	now := time.Unix(1000, 0)
	// Waiting, 100 tags: 10 s of tags, 0.2 s planning, 2 s of blobs, 10 s
	// of tags again.
	require.Equal(t, 22200*time.Millisecond, toyRates.remaining(etaRepo{tags: 100}, now))
	// Half-way through its tags at its own pace of 20 tags/s.
	r := etaRepo{tags: 100, stage: stagePreTags, since: now.Add(-5 * time.Second), done: 50, ownRate: 20}
	require.Equal(t, 2500*time.Millisecond+200*time.Millisecond+2*time.Second+10*time.Second, toyRates.remaining(r, now))
	// Transferring: 150 of 200 blobs left at the global rate.
	r = etaRepo{tags: 100, stage: stagePreBlobs, since: now.Add(-time.Second), done: 50}
	require.Equal(t, 1500*time.Millisecond+10*time.Second, toyRates.remaining(r, now))
	// The repository's real blob count wins over the estimate.
	r.blobs = 100
	require.Equal(t, 500*time.Millisecond+10*time.Second, toyRates.remaining(r, now))
	// Final import, 90 of 100 tags read.
	r = etaRepo{tags: 100, stage: stageFinalTags, since: now.Add(-9 * time.Second), done: 90}
	require.Equal(t, time.Second, toyRates.remaining(r, now))
	// Planning that already took longer than expected has nothing left.
	r = etaRepo{tags: 100, stage: stagePrePlan, since: now.Add(-time.Minute)}
	require.Equal(t, 12*time.Second, toyRates.remaining(r, now))
}

func TestEstimateRemainingReplaysTheSchedule(t *testing.T) {
	now := time.Unix(1000, 0)
	// Each waiting repository of 10 tags takes 2 s + 0.02 s + 0.2 s = 2.22 s.
	small := func(order int) etaRepo { return etaRepo{tags: 10, order: order} }
	one := toyRates.remaining(small(0), now)
	// Four of them on two slots: two rounds.
	require.Equal(t, 2*one, estimateRemaining(now, toyRates, 2, []etaRepo{small(0), small(1), small(2), small(3)}))
	// A long running one keeps its slot; the others share the second.
	long := etaRepo{tags: 1000, stage: stageFinalTags, since: now, done: 0, ownRate: 10}
	got := estimateRemaining(now, toyRates, 2, []etaRepo{long, small(0), small(1)})
	require.Equal(t, toyRates.remaining(long, now), got)
	// Nothing left, nothing to wait for.
	require.Zero(t, estimateRemaining(now, toyRates, 2, nil))
}

func TestEWMAs(t *testing.T) {
	var e ewma
	require.Zero(t, e.get())
	e.add(4)
	require.Equal(t, 4.0, e.get())
	e.add(2)
	require.Equal(t, 3.0, e.get())

	var r ratioEWMA
	require.Zero(t, r.get())
	r.add(100, 10)
	require.Equal(t, 10.0, r.get())
	r.add(1, 0) // no time passed: ignored
	require.Equal(t, 10.0, r.get())
	r.add(200, 10)
	require.InDelta(t, 290.0/19, r.get(), 1e-9)
}
