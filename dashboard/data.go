package dashboard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/internal/clip"
	"github.com/ferryhq/ferry/lease"
)

// Every page is read from the stores on its request: nothing is kept
// between requests.

// overview loads the overview. A source that fails is reported in its own
// section, so that a broken store does not hide the others.
func (h *handler) overview(ctx context.Context, r *http.Request) (any, error) {
	if _, err := requestParams(r); err != nil {
		return nil, err
	}
	now := h.cfg.Clock()
	o := &Overview{Title: h.cfg.Title, GeneratedAt: now.UTC()}
	if h.cfg.Migrations != nil {
		o.Migrations = &MigrationsSection{List: []Migration{}}
		ps, err := h.cfg.Migrations.StatusAll(ctx)
		if err != nil {
			o.Migrations.Error = h.sourceError(ctx, "migrations", err)
		}
		for _, p := range ps {
			o.Migrations.List = append(o.Migrations.List, migrationView(p))
		}
	}
	if h.cfg.Repositories != nil {
		s := h.importsSummary(ctx)
		o.Imports = &s
	}
	for _, l := range h.cfg.Leases {
		o.Leases = append(o.Leases, h.leaseStatus(ctx, l, now))
	}
	if h.cfg.Registry != nil || h.cfg.Transfers != nil {
		o.Registry = &RegistrySection{}
		if h.cfg.Registry != nil {
			ob, err := h.cfg.Registry.Outbox(ctx)
			if err != nil {
				o.Registry.Error = h.sourceError(ctx, "registry", err)
			} else {
				o.Registry.Outbox = &ob
			}
		}
		if h.cfg.Transfers != nil {
			o.Registry.Transfers = h.liveTransfers()
		}
	}
	return o, nil
}

// sourceError logs a failed read and returns what the page says about it.
func (h *handler) sourceError(ctx context.Context, source string, err error) string {
	h.cfg.Logger.WarnContext(ctx, "dashboard: reading a source failed", "source", source, "error", err)
	return err.Error()
}

func migrationView(p *bbm.Progress) Migration {
	m := p.Migration
	v := Migration{Name: m.Name, Status: m.Status, Table: m.Schema + "." + m.Table, Key: m.KeyColumns, Work: m.WorkName,
		BatchSize: m.BatchSize, Strategy: string(m.Strategy), OnFailure: string(m.OnFailure),
		Percent: math.Round(p.Percent*10) / 10, RowsDone: p.Jobs.RowsDone, RowsTotal: p.RowsTotal, RowsExact: p.Exact,
		RowsPerSecond: math.Round(p.Rate), ETA: Seconds(p.ETA),
		Jobs:      JobCounts{Total: p.Jobs.Total, Running: p.Jobs.Running, Finished: p.Jobs.Finished, Failed: p.Jobs.Failed},
		CreatedAt: m.CreatedAt.UTC(), StartedAt: timePtr(m.StartedAt), FinishedAt: timePtr(m.FinishedAt)}
	if m.ErrorCode != bbm.CodeNone {
		v.Error = fmt.Sprintf("%s: %s", m.ErrorCode, m.ErrorMessage)
	}
	for _, j := range p.FailedJobs {
		v.FailedJobs = append(v.FailedJobs, jobView(j))
	}
	return v
}

func jobView(j *bbm.Job) Job {
	v := Job{ID: j.ID, Start: j.Start.String(), End: j.End.String(), Rows: j.Rows, Status: j.Status, Attempts: j.Attempts,
		StartedAt: timePtr(j.StartedAt), FinishedAt: timePtr(j.FinishedAt), Took: Seconds(j.Duration)}
	if j.Status == bbm.JobRunning || j.Duration == 0 && j.FinishedAt.IsZero() {
		v.Took = -1
	}
	if j.ErrorCode != bbm.CodeNone {
		v.Error = fmt.Sprintf("%s: %s", j.ErrorCode, j.ErrorMessage)
	}
	return v
}

// importsSummary counts the repositories (one query) and asks Capacity
// and Forecast. A forecast made for this request counted the repositories
// already: its counts are used instead of counting again.
func (h *handler) importsSummary(ctx context.Context) ImportsSection {
	s := ImportsSection{States: []StateCount{}}
	capacity := 0
	if h.cfg.Capacity != nil {
		capacity = h.cfg.Capacity(ctx)
		s.Capacity = &capacity
	}
	var counted *enqueuer.Counts
	if h.cfg.Forecast != nil {
		var f Forecast
		f, counted = h.forecast(ctx, capacity)
		s.Forecast = &f
	}
	if counted == nil {
		c, err := h.cfg.Repositories.Count(ctx)
		if err != nil {
			s.Error = h.sourceError(ctx, "repositories", err)
			return s
		}
		counted = &c
	}
	c := *counted
	for _, st := range enqueuer.States {
		s.States = append(s.States, StateCount{State: st, Count: c.States[st]})
	}
	s.Total, s.InProgress, s.Waiting, s.Deferred = c.Total(), c.InProgress(), c.Waiting(), c.Deferred
	return s
}

func (h *handler) leaseStatus(ctx context.Context, l LeaseKey, now time.Time) LeaseStatus {
	s := LeaseStatus{Title: l.Title, Key: l.Key, ExpiresIn: -1}
	_, s.Breakable = l.Locker.(lease.Breaker)
	hd, err := lease.Inspect(ctx, l.Locker, l.Key)
	if err != nil {
		s.Error = h.sourceError(ctx, "lease "+l.Key, err)
		return s
	}
	s.Held, s.Holder, s.Token = hd.Held, hd.Holder, hd.Token
	if hd.Held {
		s.ExpiresAt = timePtr(hd.ExpiresAt)
		s.ExpiresIn = Seconds(max(hd.ExpiresAt.Sub(now), 0))
	}
	return s
}

func (h *handler) liveTransfers() []LiveTransfer {
	ts := h.cfg.Transfers.LiveTransfers()
	slices.SortFunc(ts, func(a, b LiveTransfer) int { return cmp.Compare(a.Repository, b.Repository) })
	return ts
}

// migrationPage loads a migration and one page of its jobs.
func (h *handler) migrationPage(ctx context.Context, r *http.Request) (any, error) {
	if h.cfg.Migrations == nil {
		return nil, &httpError{code: http.StatusNotFound, msg: "this dashboard shows no migrations"}
	}
	name := r.PathValue("name")
	q, err := requestParams(r, "status", "after", "limit")
	if err != nil {
		return nil, err
	}
	status, err := q.jobStatus()
	if err != nil {
		return nil, err
	}
	after, err := q.jobAfter()
	if err != nil {
		return nil, err
	}
	limit, err := q.limit(h.cfg.PageSize)
	if err != nil {
		return nil, err
	}
	p, err := h.cfg.Migrations.Status(ctx, name)
	if errors.Is(err, bbm.ErrMigrationNotFound) {
		return nil, &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("no migration named %q", clip.Marked(name, 200))}
	}
	if err != nil {
		return nil, err
	}
	// One more than a page tells whether there is a next one.
	jobs, err := h.cfg.Migrations.Jobs(ctx, name, bbm.JobListOptions{Status: status, After: after, Limit: limit + 1})
	if err != nil {
		return nil, err
	}
	page := &MigrationPage{Title: h.cfg.Title, GeneratedAt: h.cfg.Clock().UTC(), Migration: migrationView(p),
		Jobs: []Job{}, Filter: status, After: after, Limit: limit}
	if len(jobs) > limit {
		jobs = jobs[:limit]
		page.Next = jobs[limit-1].ID
	}
	for _, j := range jobs {
		page.Jobs = append(page.Jobs, jobView(j))
	}
	return page, nil
}

// failuresShown is how many of the latest aborted and skipped repositories
// the imports page lists.
const failuresShown = 10

// importsPage loads the imports page: the summary, one page of
// repositories in path order, the imports in progress and the latest
// failures. Each listing is one List served by an index.
func (h *handler) importsPage(ctx context.Context, r *http.Request) (any, error) {
	if h.cfg.Repositories == nil {
		return nil, &httpError{code: http.StatusNotFound, msg: "this dashboard shows no imports"}
	}
	q, err := requestParams(r, "state", "prefix", "after", "limit")
	if err != nil {
		return nil, err
	}
	state, err := q.state()
	if err != nil {
		return nil, err
	}
	prefix, err := q.prefix()
	if err != nil {
		return nil, err
	}
	after, err := q.path("after", false)
	if err != nil {
		return nil, err
	}
	limit, err := q.limit(h.cfg.PageSize)
	if err != nil {
		return nil, err
	}
	now := h.cfg.Clock()
	page := &ImportsPage{Title: h.cfg.Title, GeneratedAt: now.UTC(), Summary: h.importsSummary(ctx),
		State: state, Prefix: prefix, After: after, Limit: limit}
	if page.Summary.Error != "" {
		return nil, errors.New(page.Summary.Error)
	}
	repos, next, err := h.listByPath(ctx, state, prefix, after, limit)
	if err != nil {
		return nil, err
	}
	page.Repositories, page.Next = h.repositoryViews(now, repos), next
	var running []enqueuer.Repository
	for _, st := range enqueuer.InProgressStates {
		rs, err := h.cfg.Repositories.List(ctx, enqueuer.ListOptions{State: st, Order: enqueuer.OrderOldest, Limit: limit})
		if err != nil {
			return nil, err
		}
		running = append(running, rs...)
	}
	slices.SortFunc(running, func(a, b enqueuer.Repository) int { return a.StateChangedAt.Compare(b.StateChangedAt) })
	if len(running) > limit {
		running = running[:limit]
	}
	page.InProgress = h.repositoryViews(now, running)
	if err := h.addRegistry(ctx, page.InProgress); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		state enqueuer.State
		dst   *[]Repository
	}{{enqueuer.StateImportAborted, &page.Aborted}, {enqueuer.StateImportSkipped, &page.Skipped}} {
		rs, err := h.cfg.Repositories.List(ctx, enqueuer.ListOptions{State: f.state, Order: enqueuer.OrderNewest, Limit: failuresShown})
		if err != nil {
			return nil, err
		}
		*f.dst = h.repositoryViews(now, rs)
	}
	return page, nil
}

// listByPath returns up to limit repositories in state (every state when
// empty) under prefix, after the path after, in path order, and the
// after of the next page ("" when none). Every state is one indexed List
// of limit+1 rows; for every state the pages are merged.
func (h *handler) listByPath(ctx context.Context, state enqueuer.State, prefix, after string, limit int) ([]enqueuer.Repository, string, error) {
	states := enqueuer.States
	if state != "" {
		states = []enqueuer.State{state}
	}
	opts := enqueuer.ListOptions{Order: enqueuer.OrderPath, PathPrefix: prefix, Limit: limit + 1}
	if after != "" {
		// Paths are unique; the largest ID makes "after" exclude after
		// itself in every Store's order.
		opts.After = &enqueuer.Repository{Path: after, ID: math.MaxInt64}
	}
	var all []enqueuer.Repository
	for _, st := range states {
		opts.State = st
		rs, err := h.cfg.Repositories.List(ctx, opts)
		if err != nil {
			return nil, "", err
		}
		all = append(all, rs...)
	}
	slices.SortFunc(all, func(a, b enqueuer.Repository) int { return cmp.Compare(a.Path, b.Path) })
	if len(all) <= limit {
		return all, "", nil
	}
	all = all[:limit]
	return all, all[limit-1].Path, nil
}

func (h *handler) repositoryViews(now time.Time, rs []enqueuer.Repository) []Repository {
	out := make([]Repository, 0, len(rs))
	var live map[string]LiveTransfer
	if h.cfg.Transfers != nil {
		live = map[string]LiveTransfer{}
		for _, t := range h.cfg.Transfers.LiveTransfers() {
			live[t.Repository] = t
		}
	}
	for _, r := range rs {
		v := Repository{Path: r.Path, State: r.State, InState: Seconds(max(now.Sub(r.StateChangedAt), 0)),
			StateChangedAt: r.StateChangedAt.UTC(), TagCount: r.TagCount, RetryCount: r.RetryCount,
			SkipReason: r.SkipReason, AbortReason: r.AbortReason, DeferReason: r.DeferReason}
		if t, ok := live[r.Path]; ok {
			v.Transfer = &t
		}
		out = append(out, v)
	}
	return out
}

// addRegistry adds the registry's record to each repository (one read
// each: only for the short lists).
func (h *handler) addRegistry(ctx context.Context, rs []Repository) error {
	if h.cfg.Registry == nil {
		return nil
	}
	for i := range rs {
		imp, ok, err := h.cfg.Registry.RegistryImport(ctx, rs[i].Path)
		if err != nil {
			return err
		}
		if ok {
			rs[i].Registry = &imp
		}
	}
	return nil
}

// repositoryPage loads one repository.
func (h *handler) repositoryPage(ctx context.Context, r *http.Request) (any, error) {
	if h.cfg.Repositories == nil {
		return nil, &httpError{code: http.StatusNotFound, msg: "this dashboard shows no imports"}
	}
	q, err := requestParams(r, "path")
	if err != nil {
		return nil, err
	}
	path, err := q.path("path", true)
	if err != nil {
		return nil, err
	}
	rep, err := h.cfg.Repositories.Get(ctx, path)
	if errors.Is(err, enqueuer.ErrNotFound) {
		return nil, &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("no repository %q", path)}
	}
	if err != nil {
		return nil, err
	}
	now := h.cfg.Clock()
	views := h.repositoryViews(now, []enqueuer.Repository{rep})
	if err := h.addRegistry(ctx, views); err != nil {
		return nil, err
	}
	return &RepositoryPage{Title: h.cfg.Title, GeneratedAt: now.UTC(), Repository: views[0],
		PreImportingAt: timePtr(rep.PreImportingAt), PreImportDoneAt: timePtr(rep.PreImportDoneAt),
		ImportingAt: timePtr(rep.ImportingAt), ImportDoneAt: timePtr(rep.ImportDoneAt),
		AbortedAt: timePtr(rep.AbortedAt), SkippedAt: timePtr(rep.SkippedAt), CreatedAt: rep.CreatedAt.UTC()}, nil
}
