package dashboard

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"time"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/lease"
)

// Defaults and limits of Config.
const (
	// DefaultPageSize is Config.PageSize's default; MaxPageSize bounds it
	// and the limit query parameter.
	DefaultPageSize = 50
	MaxPageSize     = 500
	// DefaultRefresh is Config.Refresh's default.
	DefaultRefresh = 5 * time.Second
	// DefaultForecastMaxAge is Config.ForecastMaxAge's default.
	DefaultForecastMaxAge = 30 * time.Second
	// DefaultTitle is Config.Title's default.
	DefaultTitle = "Ferry"
	// MinCSRFKeyLen is the shortest Config.CSRFKey accepted.
	MinCSRFKeyLen = 32
)

// Migrations is what the dashboard reads and steers of package bbm:
// *bbm.Admin (a worker's Admin()) implements it.
type Migrations interface {
	StatusAll(ctx context.Context) ([]*bbm.Progress, error)
	Status(ctx context.Context, name string) (*bbm.Progress, error)
	Jobs(ctx context.Context, name string, opts bbm.JobListOptions) ([]*bbm.Job, error)
	Pause(ctx context.Context, name string) (*bbm.Migration, error)
	Resume(ctx context.Context, name string) (*bbm.Migration, error)
	RetryFailed(ctx context.Context, name string) (*bbm.Migration, error)
}

// Repositories is what the dashboard reads of the enqueuer's store:
// enqueuer.Store (*enqueuer.PostgresStore, enqueuertest.Store) implements
// it. Every listing the pages make is one indexed, limited List.
type Repositories interface {
	Get(ctx context.Context, path string) (enqueuer.Repository, error)
	Count(ctx context.Context) (enqueuer.Counts, error)
	List(ctx context.Context, opts enqueuer.ListOptions) ([]enqueuer.Repository, error)
}

// ImportAdmin is what the import actions do: *enqueuer.Enqueuer
// implements it. Retry gives a skipped repository a new start
// (ResetSkipped); cancel ends a repository's migration for good
// (ForceCancel: an import in progress is cancelled at the registry first).
type ImportAdmin interface {
	ResetSkipped(ctx context.Context, opts enqueuer.ResetOptions) (int, error)
	ForceCancel(ctx context.Context, path string) (enqueuer.Repository, error)
}

// Forecaster forecasts how long the imports that are left take:
// *enqueuer.Enqueuer implements it (Enqueuer.Forecast).
type Forecaster interface {
	Forecast(ctx context.Context, opts enqueuer.ForecastOptions) (enqueuer.Forecast, error)
}

// Registry is the registry side of imports, where the host runs
// transfer/importserver: each repository's last import run and the
// notification outbox. Package dashboard/importview adapts an
// importserver.Store to it.
type Registry interface {
	// RegistryImport returns the repository's last import run, or ok
	// false when the registry has none.
	RegistryImport(ctx context.Context, path string) (imp RegistryImport, ok bool, err error)
	// Outbox counts the outcomes not yet delivered to the coordinator.
	Outbox(ctx context.Context) (Outbox, error)
}

// Transfers reports the blob copies running in this process:
// importview.Progress records them from transfer.ImportOptions.Progress.
type Transfers interface {
	// LiveTransfers returns the transfers running now, by repository.
	LiveTransfers() []LiveTransfer
}

// LeaseKey is a lease the overview shows: who holds it and until when.
type LeaseKey struct {
	// Title says what the lease is for, e.g. "enqueuer". Default: Key.
	Title string
	// Key is the lease's key, e.g. enqueuer.DefaultLeaseKey.
	Key string
	// Locker is the Locker the key is taken on; it must implement
	// lease.Inspector (pglease, redislease and leasetest do, also through
	// lease.Observe). When it also implements lease.Breaker, the
	// break_lease action can end a stuck holder's lease.
	Locker lease.Locker
}

// Config configures New. Prefix is required when the handler is mounted
// anywhere but the root; everything else is optional, and a section
// whose source is nil is not shown. At least one source is required.
type Config struct {
	// Prefix is the path the handler is mounted at, e.g. "/ferry" for
	// mux.Handle("/ferry/", h): links and forms use it, and requests
	// outside it are 404. Default "" (the root).
	Prefix string
	// Title heads every page. Default DefaultTitle.
	Title string

	// Migrations shows bbm's migrations: a worker's Admin().
	Migrations Migrations
	// Repositories shows the enqueuer's repositories: its Store.
	Repositories Repositories
	// Imports enables the retry and cancel buttons of repositories: the
	// *enqueuer.Enqueuer. It needs Repositories.
	Imports ImportAdmin
	// Capacity is the enqueuer's capacity (the same function as
	// enqueuer.Config.Capacity), shown with the imports in progress.
	Capacity func(ctx context.Context) int
	// Forecast shows how long the imports that are left will take, from
	// the measured durations by tag count and the capacity: the
	// *enqueuer.Enqueuer on the same store as Repositories. It needs
	// Repositories.
	Forecast Forecaster
	// ForecastMaxAge is how long one forecast serves the pages (they say
	// when it was made): a forecast reads up to
	// enqueuer.DefaultForecastWindow waiting repositories, and moves
	// slowly. No request waits for one: the first request, and the first
	// past ForecastMaxAge, start one in the background (one at a time)
	// and show the kept one, or that one is being made. Default
	// DefaultForecastMaxAge; negative: every request makes one and waits.
	// A forecast in the background ends with its answer or after a
	// minute, whatever becomes of the request that started it.
	ForecastMaxAge time.Duration
	// Registry shows the registry side of each import (import server).
	Registry Registry
	// Transfers shows the blob copies running in this process.
	Transfers Transfers
	// Leases are the lease keys to show.
	Leases []LeaseKey

	// Authorize turns actions on: every action (a POST with a valid CSRF
	// token) is first passed to it, with the request (to read the
	// host's session or headers), and runs only if it returns nil; an
	// error is answered 403 with its message. nil (the default): the
	// dashboard is read-only, shows no buttons and refuses every POST.
	Authorize func(r *http.Request, a Action) error
	// CSRFKey signs the CSRF tokens of action forms; at least
	// MinCSRFKeyLen bytes. Hosts that run several replicas behind one
	// address give them the same key, so that a form served by one is
	// accepted by another. Default: random per New.
	CSRFKey []byte

	// Refresh is how often pages reload themselves (a little plain
	// JavaScript; pages work without it). Default DefaultRefresh;
	// negative: never.
	Refresh time.Duration
	// PageSize is the default number of rows per page of jobs and
	// repositories. Default DefaultPageSize; at most MaxPageSize.
	PageSize int
	// Logger receives one line per action (who asked is the host's
	// business: log it in Authorize) and per failed store read. Default:
	// slog.Default().
	Logger *slog.Logger
	// Clock gives the time ages and expiries are computed from. Default
	// time.Now.
	Clock func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	if c.Prefix != "" {
		u, err := url.Parse(c.Prefix)
		if err != nil || c.Prefix[0] != '/' || path.Clean(c.Prefix) != c.Prefix || c.Prefix == "/" ||
			u.Path != c.Prefix || u.RawQuery != "" || u.Fragment != "" {
			return bad("Prefix %q: want a clean absolute path such as /ferry, without a trailing slash", c.Prefix)
		}
	}
	if c.Title == "" {
		c.Title = DefaultTitle
	}
	if c.Migrations == nil && c.Repositories == nil && c.Registry == nil && c.Transfers == nil && len(c.Leases) == 0 {
		return bad("nothing to show: set Migrations, Repositories, Registry, Transfers or Leases")
	}
	if c.Imports != nil && c.Repositories == nil {
		return bad("Imports needs Repositories")
	}
	if c.Forecast != nil && c.Repositories == nil {
		return bad("Forecast needs Repositories")
	}
	c.Leases = slices.Clone(c.Leases) // titles are filled in below
	for i, l := range c.Leases {
		if l.Locker == nil {
			return bad("Leases[%d] (%q) has no Locker", i, l.Key)
		}
		if _, ok := l.Locker.(lease.Inspector); !ok {
			return bad("Leases[%d] (%q): a %T cannot tell who holds a key (it is not a lease.Inspector)", i, l.Key, l.Locker)
		}
		if err := lease.CheckKey(l.Key); err != nil {
			return bad("Leases[%d]: %v", i, err)
		}
		if l.Title == "" {
			c.Leases[i].Title = l.Key
		}
	}
	if c.CSRFKey != nil && len(c.CSRFKey) < MinCSRFKeyLen {
		return bad("CSRFKey has %d bytes, want at least %d", len(c.CSRFKey), MinCSRFKeyLen)
	}
	switch {
	case c.Refresh == 0:
		c.Refresh = DefaultRefresh
	case c.Refresh < 0:
		c.Refresh = 0
	}
	if c.ForecastMaxAge == 0 {
		c.ForecastMaxAge = DefaultForecastMaxAge
	}
	switch {
	case c.PageSize == 0:
		c.PageSize = DefaultPageSize
	case c.PageSize < 0 || c.PageSize > MaxPageSize:
		return bad("PageSize %d: want 1..%d", c.PageSize, MaxPageSize)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c, nil
}
