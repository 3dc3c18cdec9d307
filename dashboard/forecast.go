package dashboard

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/ferryhq/ferry/enqueuer"
)

// forecasts keeps the last forecast: a forecast reads the head of the
// whole queue (up to enqueuer.DefaultForecastWindow waiting repositories)
// and moves slowly, so pages that reload every few seconds share one.
// Once it is Config.ForecastMaxAge old, the next request starts a new one
// in the background and is answered with the kept one (which says when it
// was made); only a request that finds none waits for one. Concurrent
// requests share one forecast in flight.
type forecasts struct {
	maxAge time.Duration
	group  singleflight.Group

	mu       sync.Mutex
	last     enqueuer.Forecast
	capacity int       // the capacity last was made at
	made     time.Time // when last was made, by Config.Clock; zero: none
	failed   error     // the last background forecast's error
}

// forecastTimeout bounds a forecast made in the background, which no
// request waits for.
const forecastTimeout = time.Minute

// getForecast returns a forecast at capacity (the enqueuer's own when 0)
// and whether it was made for this request (its Counts are then as
// current as a Count).
func (h *handler) getForecast(ctx context.Context, capacity int) (f enqueuer.Forecast, fresh bool, err error) {
	c := &h.forecasts
	now := h.cfg.Clock()
	key := strconv.Itoa(capacity)
	c.mu.Lock()
	kept := !c.made.IsZero() && c.capacity == capacity && c.failed == nil && c.maxAge > 0
	f, stale := c.last, now.Sub(c.made) >= c.maxAge
	c.mu.Unlock()
	if kept {
		if stale {
			bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), forecastTimeout)
			// The result is kept by makeForecast; DoChan's channel is
			// buffered, so nobody needs to read it.
			c.group.DoChan(key, func() (any, error) {
				defer cancel()
				return h.makeForecast(bg, capacity, true)
			})
		}
		return f, false, nil
	}
	v, err, _ := c.group.Do(key, func() (any, error) { return h.makeForecast(ctx, capacity, false) })
	if err != nil {
		return enqueuer.Forecast{}, false, err
	}
	return v.(enqueuer.Forecast), true, nil
}

// makeForecast asks Config.Forecast and keeps the answer. A failure in
// the background is kept too, so that the next request tries again and
// shows the error if it fails again.
func (h *handler) makeForecast(ctx context.Context, capacity int, background bool) (enqueuer.Forecast, error) {
	c := &h.forecasts
	now := h.cfg.Clock()
	f, err := h.cfg.Forecast.Forecast(ctx, enqueuer.ForecastOptions{Now: now, Capacity: capacity})
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if background {
			c.failed = err
			h.cfg.Logger.WarnContext(ctx, "dashboard: forecasting failed", "error", err)
		}
		return f, err
	}
	c.last, c.capacity, c.made, c.failed = f, capacity, now, nil
	return f, nil
}

// forecast returns the forecast's view; a failure is shown in the
// forecast's card, not as the page's error.
func (h *handler) forecast(ctx context.Context, capacity int) (Forecast, *enqueuer.Counts) {
	f, fresh, err := h.getForecast(ctx, capacity)
	if err != nil {
		return Forecast{At: h.cfg.Clock().UTC(), Left: -1, Buckets: []ForecastBucket{}, Error: h.sourceError(ctx, "forecast", err)}, nil
	}
	if fresh {
		return forecastView(f), &f.Counts
	}
	return forecastView(f), nil
}

func forecastView(f enqueuer.Forecast) Forecast {
	v := Forecast{At: f.At.UTC(), Known: f.Known, Remaining: f.Counts.InProgress() + f.Counts.Waiting(), Capacity: f.Capacity,
		Left: -1, Buckets: make([]ForecastBucket, 0, len(f.Buckets))}
	if f.Known {
		v.Left = Seconds(f.Remaining)
		v.ETA = timePtr(f.ETA)
	}
	for _, b := range f.Buckets {
		bv := ForecastBucket{MinTags: b.MinTags, Finished: b.Finished, MeanTags: math.Round(b.MeanTags*10) / 10,
			MeanDuration: -1, InProgress: b.InProgress, Waiting: b.Waiting}
		if b.MaxTags != math.MaxInt {
			bv.MaxTags = &b.MaxTags
		}
		if b.Finished > 0 {
			bv.MeanDuration = Seconds(b.MeanDuration)
		}
		v.Buckets = append(v.Buckets, bv)
	}
	return v
}

// Tags describes the bucket's range of tag counts: "2", "3–5", "100001+".
func (b ForecastBucket) Tags() string {
	switch {
	case b.MaxTags == nil:
		return strconv.Itoa(b.MinTags) + "+"
	case *b.MaxTags == b.MinTags:
		return strconv.Itoa(b.MinTags)
	}
	return strconv.Itoa(b.MinTags) + "–" + strconv.Itoa(*b.MaxTags)
}
