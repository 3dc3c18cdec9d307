package importserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/backoff"
	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/internal/clip"
)

// notificationBody is what the coordinator receives: the fields GitLab's
// registry sent, which enqueuer.Handler reads.
type notificationBody struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
}

// deliveryLoop delivers due notifications: those handed over by the run
// that recorded them (claimed already), and those it claims from the
// outbox: when asked to (poke), and every PollInterval for retries and for
// what other processes left. Asked to flush (Shutdown), it makes one last
// pass within the flush's context and ends: passes run one after the
// other, so the last one sees every outcome recorded before it.
func (s *Server) deliveryLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.Notify.PollInterval)
	defer t.Stop()
	claim := true
	for {
		if n := s.deliverDue(ctx, claim); n > 0 && n == s.claimLimit() && ctx.Err() == nil {
			continue // a full batch: there may be more
		}
		select {
		case <-ctx.Done():
			return
		case fctx := <-s.flush:
			if fctx.Err() == nil {
				last, cancel := context.WithCancel(fctx)
				stop := context.AfterFunc(ctx, cancel)
				s.deliverDue(last, true)
				stop()
				cancel()
			}
			return
		case <-t.C:
			claim = true
		case <-s.wake:
			claim = true
		case <-s.handedWake:
			claim = false
		}
	}
}

func (s *Server) claimLimit() int { return 2 * s.cfg.Notify.Concurrency }

// deliverDue delivers one batch: the notifications handed over, and with
// claim those it claims from the outbox. It returns the batch's size.
func (s *Server) deliverDue(ctx context.Context, claim bool) int {
	batch := s.takeHanded(s.claimLimit())
	if claim && len(batch) < s.claimLimit() {
		// Bounded like a delivery: a claim hanging on a dead connection
		// must not stop the deliveries for good.
		claimCtx, cancel := context.WithTimeout(ctx, s.cfg.Notify.Timeout)
		claimed, err := s.cfg.Store.ClaimNotifications(claimCtx, ClaimRequest{Owner: s.cfg.Instance, Token: s.token,
			Limit: s.claimLimit() - len(batch), LeaseFor: s.cfg.Notify.LeaseFor})
		cancel()
		if err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "importserver: reading the outbox failed", "error", err)
		}
		batch = append(batch, claimed...)
	}
	attempts := make([]attempt, len(batch))
	var g errgroup.Group
	g.SetLimit(s.cfg.Notify.Concurrency)
	for i, n := range batch {
		g.Go(func() error {
			attempts[i] = s.deliver(ctx, n)
			return nil
		})
	}
	_ = g.Wait()
	s.recordAttempts(ctx, attempts)
	return len(batch)
}

// attempt is one delivery attempt, to record.
type attempt struct {
	n       Notification
	d       Delivery
	err     error
	aborted bool // cut short by shutdown: not recorded
}

// deliver makes one attempt. An attempt cut short by ctx (shutdown) is
// not recorded: the notification stays claimed until the next process of
// this instance, or the lease's end, frees it.
func (s *Server) deliver(ctx context.Context, n Notification) attempt {
	began := time.Now()
	ctx = s.obs.DeliveryStart(ctx, DeliveryStartEvent{Notification: n})
	code, err := s.send(ctx, n)
	if ctx.Err() != nil {
		s.obs.DeliveryEnd(ctx, DeliveryEvent{Notification: n, Result: Retry, Code: code, Duration: time.Since(began), Err: err, Abandoned: true})
		return attempt{n: n, aborted: true}
	}
	d := Delivery{ID: n.ID, Code: code, Result: Retry}
	switch {
	case err == nil:
		d.Result = Delivered
	case refusal(code):
		d.Refused = true
		if n.Refusals+1 >= s.cfg.Notify.MaxRefusals {
			d.Result = GiveUp
		}
	}
	if err != nil {
		d.Err = err.Error()
	}
	if d.Result == Retry {
		d.RetryIn = s.backoff(n.Attempts)
	}
	s.obs.DeliveryEnd(ctx, DeliveryEvent{Notification: n, Result: d.Result, Code: code, Duration: time.Since(began), Err: err})
	return attempt{n: n, d: d, err: err}
}

// recordAttempts records a batch's attempts in one store call, then logs
// each.
func (s *Server) recordAttempts(ctx context.Context, attempts []attempt) {
	ds := make([]Delivery, 0, len(attempts))
	for _, a := range attempts {
		if !a.aborted {
			ds = append(ds, a.d)
		}
	}
	if len(ds) == 0 {
		return
	}
	rec, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rerr := s.cfg.Store.RecordDeliveries(rec, ds)
	for _, a := range attempts {
		if a.aborted {
			continue
		}
		n, d := a.n, a.d
		log := s.log.With("repository", n.Path, "status", n.Status, "notification", n.ID, "attempt", n.Attempts+1, "code", d.Code)
		switch {
		case rerr != nil:
			log.WarnContext(ctx, "importserver: could not record a delivery attempt; it will be retried after its lease", "error", rerr)
		case d.Result == Delivered:
			log.InfoContext(ctx, "importserver: notification delivered")
		case d.Result == GiveUp:
			log.ErrorContext(ctx, "importserver: notification refused too often; given up", "refusals", n.Refusals+1, "error", a.err)
		default:
			log.WarnContext(ctx, "importserver: notification not delivered; retrying", "retry_in", d.RetryIn, "error", a.err)
		}
	}
}

// refusal reports whether an answer says the notification itself is
// wrong, so that sending it again will not help: 4xx, except
// authentication (a configuration that may be fixed) and the codes that
// mean "later".
func refusal(code int) bool {
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return false
	}
	return code >= 400 && code < 500
}

// backoff is the wait after a failed attempt when attempts were made
// before it: capped exponential, with equal jitter.
func (s *Server) backoff(attempts int) time.Duration {
	return backoff.Equal(backoff.Policy{Base: s.cfg.Notify.Backoff, Max: s.cfg.Notify.MaxBackoff}.Delay(attempts))
}

// send PUTs one notification. A nil error means a 2xx answer; otherwise
// code is the answer's status (0 when there was none).
func (s *Server) send(ctx context.Context, n Notification) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Notify.Timeout)
	defer cancel()
	body, err := json.Marshal(notificationBody{Name: name(n.Path), Path: n.Path, Status: n.Status, Detail: n.Detail})
	if err != nil {
		return 0, err
	}
	u := s.cfg.Notify.URL + "/repositories/" + n.Path + "/migration/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ferry-importserver")
	if s.cfg.Notify.Secret != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.Notify.Secret)
	}
	resp, err := s.cfg.Notify.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10) // lets the connection be reused
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, fmt.Errorf("HTTP %d: %s", resp.StatusCode, clip.Marked(strings.TrimSpace(string(answer)), 512))
}
