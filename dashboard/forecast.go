package dashboard

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/ferryhq/ferry/enqueuer"
)

// forecasts keeps the last forecast: a forecast reads the head of the
// whole queue (up to enqueuer.DefaultForecastWindow waiting repositories,
// more than a page's budget on a large registry) and moves slowly, so no
// request waits for one. A request that finds none, or one that is
// Config.ForecastMaxAge old, or a failure, starts a new one in the
// background (one at a time) and shows what is kept: the last forecast
// (which says when it was made), the last failure, or that one is being
// made. With a negative ForecastMaxAge every request makes one and waits.
type forecasts struct {
	maxAge time.Duration
	group  singleflight.Group

	mu       sync.Mutex
	last     enqueuer.Forecast
	capacity int       // the capacity last was made at
	made     time.Time // when last was made, by Config.Clock; zero: none
	failed   error     // the last forecast's error, until one succeeds
}

// forecastTimeout bounds a forecast made in the background, which no
// request waits for.
const forecastTimeout = time.Minute

// errForecastPending is a forecast that is being made.
var errForecastPending = errors.New("dashboard: a forecast is being made")

// getForecast returns a forecast at capacity (the enqueuer's own when 0),
// and whether it was made for this request (its Counts are then as
// current as a Count); errForecastPending while the first one is made.
func (h *handler) getForecast(ctx context.Context, capacity int) (f enqueuer.Forecast, fresh bool, err error) {
	c := &h.forecasts
	key := strconv.Itoa(capacity)
	if c.maxAge < 0 {
		v, err, _ := c.group.Do(key, func() (any, error) { return h.makeForecast(ctx, capacity) })
		if err != nil {
			return enqueuer.Forecast{}, false, err
		}
		return v.(enqueuer.Forecast), true, nil
	}
	now := h.cfg.Clock()
	c.mu.Lock()
	have := !c.made.IsZero() && c.capacity == capacity
	f, failed := c.last, c.failed
	current := have && failed == nil && now.Sub(c.made) < c.maxAge
	c.mu.Unlock()
	if !current {
		// makeForecast keeps the result; DoChan's channel is buffered, so
		// nobody needs to read it. A forecast already in flight is not
		// started again.
		c.group.DoChan(key, func() (any, error) {
			bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), forecastTimeout)
			defer cancel()
			return h.makeForecast(bg, capacity)
		})
	}
	switch {
	case failed != nil:
		return enqueuer.Forecast{}, false, failed
	case !have:
		return enqueuer.Forecast{}, false, errForecastPending
	}
	return f, false, nil
}

// makeForecast asks Config.Forecast and keeps the answer or the failure.
func (h *handler) makeForecast(ctx context.Context, capacity int) (enqueuer.Forecast, error) {
	c := &h.forecasts
	now := h.cfg.Clock()
	f, err := h.cfg.Forecast.Forecast(ctx, enqueuer.ForecastOptions{Now: now, Capacity: capacity})
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.failed = err
		h.cfg.Logger.WarnContext(ctx, "dashboard: forecasting failed", "error", err)
		return f, err
	}
	c.last, c.capacity, c.made, c.failed = f, capacity, now, nil
	return f, nil
}

// forecast returns the forecast's view, and its counts when it was made
// for this request. A failure is shown in the forecast's card, not as the
// page's error.
func (h *handler) forecast(ctx context.Context, capacity int) (Forecast, *enqueuer.Counts) {
	f, fresh, err := h.getForecast(ctx, capacity)
	switch {
	case errors.Is(err, errForecastPending):
		return Forecast{At: h.cfg.Clock().UTC(), Pending: true, Left: -1, Buckets: []ForecastBucket{}}, nil
	case err != nil:
		return Forecast{At: h.cfg.Clock().UTC(), Left: -1, Buckets: []ForecastBucket{}, Error: err.Error()}, nil
	case fresh:
		return forecastView(f), &f.Counts
	}
	return forecastView(f), nil
}

func forecastView(f enqueuer.Forecast) Forecast {
	v := Forecast{At: f.At.UTC(), Known: f.Known, Unknown: f.Unknown, Progressed: f.Progressed,
		Remaining: f.Counts.InProgress() + f.Counts.Waiting(), Capacity: f.Capacity,
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
