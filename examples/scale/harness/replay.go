package harness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/enqueuer/enqueuertest"
	"github.com/ferryhq/ferry/lease/leasetest"
)

// Timeline is what replays a run's forecast: when the run started (the
// origin of every elapsed time), how long it took, its capacity, the
// once-a-second samples and every repository's final record in the
// enqueuer's store, whose timestamps say where each one stood at any
// moment. The scale command writes it with -timeline and replays it with
// -replay.
type Timeline struct {
	Started  time.Time
	Wall     time.Duration
	Capacity int
	Samples  []Sample
	Records  []enqueuer.Repository
}

// Sample is one of the once-a-second samples of a run.
type Sample struct {
	// Elapsed is from the start of the run.
	Elapsed time.Duration
	// BlobsDone counts the blob transfers done; Settled the repositories
	// imported or skipped.
	BlobsDone int64
	Settled   int
	// Forecast is enqueuer.Forecast's Remaining then, if ForecastKnown.
	Forecast      time.Duration
	ForecastKnown bool
	// Progress is the registry's progress of each running pass, by
	// repository (absent from timelines recorded before it was).
	Progress map[string]enqueuer.ImportProgress `json:",omitempty"`
}

// HasProgress reports whether tl recorded the registry's progress.
func (tl Timeline) HasProgress() bool {
	for _, s := range tl.Samples {
		if len(s.Progress) > 0 {
			return true
		}
	}
	return false
}

// Replay is the forecast made again at every sample of a Timeline.
type Replay struct {
	// ByBlobs and ByRepositories are the points at the shares asked for,
	// as Result.Forecast and Result.ForecastByRepositories.
	ByBlobs, ByRepositories []ETAPoint
	// MeanError is the mean |error| over the Known samples with at least
	// ReplayMinLeft left; Samples counts them.
	MeanError float64
	Samples   int
}

// ReplayMinLeft: samples closer to the end than this are left out of
// Replay.MeanError, where a second of sampling is a large error.
const ReplayMinLeft = 5 * time.Second

// ReplayForecast makes enqueuer.Forecast again at every sample of tl with
// the enqueuer's default options and tl.Capacity, from the repositories as
// they stood then (rebuilt from their final records in an in-memory
// store), and evaluates it against the run's real end. With
// registryProgress the registry answers with the progress the sample
// recorded (ForecastOptions.RegistryProgress); a timeline without it
// replays as without. Only the final attempt of a retried repository is
// in its record, so a run with repository retries replays approximately.
func ReplayForecast(ctx context.Context, tl Timeline, shares []float64, registryProgress bool) (Replay, error) {
	var out Replay
	if len(tl.Samples) == 0 || len(tl.Records) == 0 || tl.Capacity <= 0 {
		return out, errors.New("scale: replay: the timeline has no samples, records or capacity")
	}
	records := slices.Clone(tl.Records)
	slices.SortFunc(records, func(a, b enqueuer.Repository) int { return int(a.ID - b.ID) })
	finalBlobs := max(tl.Samples[len(tl.Samples)-1].BlobsDone, 1)
	var sum float64
	doneRepos, doneBlobs := map[float64]bool{}, map[float64]bool{}
	for _, s := range tl.Samples {
		if s.Elapsed >= tl.Wall {
			break
		}
		now := tl.Started.Add(s.Elapsed)
		var progress map[string]enqueuer.ImportProgress
		if registryProgress {
			progress = s.Progress
		}
		f, err := forecastAt(ctx, records, now, tl.Capacity, progress)
		if err != nil {
			return out, err
		}
		p := ETAPoint{At: s.Elapsed, Actual: tl.Wall - s.Elapsed, Predicted: -1}
		if f.Known {
			p.Predicted = f.Remaining
			p.Error = float64(p.Predicted-p.Actual) / float64(p.Actual)
			if p.Actual >= ReplayMinLeft {
				sum += math.Abs(p.Error)
				out.Samples++
			}
		}
		for _, share := range shares {
			if !doneRepos[share] && float64(s.Settled) >= share*float64(len(records)) {
				doneRepos[share] = true
				p.Progress = share
				out.ByRepositories = append(out.ByRepositories, p)
			}
			if !doneBlobs[share] && float64(s.BlobsDone) >= share*float64(finalBlobs) {
				doneBlobs[share] = true
				p.Progress = share
				out.ByBlobs = append(out.ByBlobs, p)
			}
		}
	}
	if out.Samples > 0 {
		out.MeanError = sum / float64(out.Samples)
	}
	return out, nil
}

// forecastAt is the forecast at now of the repositories as they stood
// then; with progress (non-nil), the registry reports it for the running
// passes.
func forecastAt(ctx context.Context, records []enqueuer.Repository, now time.Time, capacity int, progress map[string]enqueuer.ImportProgress) (enqueuer.Forecast, error) {
	store := enqueuertest.NewStore(enqueuertest.StoreOptions{Clock: func() time.Time { return now }})
	registry := enqueuertest.NewRegistry(enqueuertest.RegistryOptions{})
	for _, r := range records {
		cur, err := store.Add(ctx, enqueuer.NewRepository{Path: r.Path, TagCount: r.TagCount, Priority: r.Priority, CreatedAt: r.CreatedAt})
		if err != nil {
			return enqueuer.Forecast{}, fmt.Errorf("scale: replay: %w", err)
		}
		for _, st := range []struct {
			at time.Time
			ev enqueuer.Event
		}{
			{r.PreImportingAt, enqueuer.EventStartPreImport}, {r.PreImportDoneAt, enqueuer.EventFinishPreImport},
			{r.ImportingAt, enqueuer.EventStartImport}, {r.ImportDoneAt, enqueuer.EventFinishImport},
		} {
			if st.at.IsZero() || st.at.After(now) {
				break
			}
			if cur, err = store.Transition(ctx, enqueuer.Change{ID: cur.ID, From: cur.State, Event: st.ev, At: st.at}); err != nil {
				return enqueuer.Forecast{}, fmt.Errorf("scale: replay of %s: %w", r.Path, err)
			}
		}
		if p, ok := progress[r.Path]; ok {
			switch cur.State {
			case enqueuer.StatePreImporting:
				registry.SetStatus(r.Path, enqueuer.StatusPreImportInProgress)
			case enqueuer.StateImporting:
				registry.SetStatus(r.Path, enqueuer.StatusImportInProgress)
			}
			registry.SetProgress(r.Path, &p)
		}
	}
	enq, err := enqueuer.New(enqueuer.Config{
		Store:    store,
		Registry: registry,
		Locker:   leasetest.NewLocker(leasetest.Options{}),
		Capacity: func(context.Context) int { return capacity },
		Clock:    func() time.Time { return now },
	})
	if err != nil {
		return enqueuer.Forecast{}, err
	}
	return enq.Forecast(ctx, enqueuer.ForecastOptions{Now: now, RegistryProgress: progress != nil})
}
