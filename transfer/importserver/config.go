package importserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ferryhq/ferry/transfer"
)

// Defaults of Config.
const (
	// DefaultMaxConcurrentImports is Config.MaxConcurrentImports' default.
	DefaultMaxConcurrentImports = 10
	// DefaultPreImportTimeout and DefaultImportTimeout bound one run. They
	// are below the coordinator's stale timeouts (enqueuer's 30m and 10m
	// defaults), so that the registry gives up, and says so, first.
	DefaultPreImportTimeout = 25 * time.Minute
	DefaultImportTimeout    = 8 * time.Minute
	// DefaultHeartbeatInterval is how often a server tells the store its
	// imports still run; DefaultStaleAfter is how long without a heartbeat
	// makes an import stale.
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultStaleAfter        = time.Minute
	// DefaultMaxBodyBytes bounds an import API request body.
	DefaultMaxBodyBytes = 4 << 10
)

// Importer runs the passes of an import. *transfer.Importer implements it;
// each call names exactly one repository. A repository's first PreImport
// may begin before the server knows that the repository exists (see
// Config.CheckBeforeFirstStart); the server then holds the pass at its
// transfer.EventRepositoryPlanned, reported through the context's
// transfer.WithProgress, until it knows, and cancels the context when the
// repository is not there. *transfer.Importer plans (reads only) before
// that event and writes nothing once its context is cancelled.
type Importer interface {
	PreImport(ctx context.Context, repos ...string) (*transfer.Report, error)
	Import(ctx context.Context, repos ...string) (*transfer.Report, error)
}

// Repositories tells which repositories exist in the source registry: a
// start or status of any other gets 404.
type Repositories interface {
	Exists(ctx context.Context, path string) (bool, error)
}

// RepositoriesFunc adapts a function to Repositories.
type RepositoriesFunc func(ctx context.Context, path string) (bool, error)

// Exists implements Repositories.
func (f RepositoriesFunc) Exists(ctx context.Context, path string) (bool, error) { return f(ctx, path) }

// Authorizer decides whether a request to the import API may proceed. It
// sees the request before its path, query or body are read and must not
// read the body. A nil error admits the request; an error wrapping
// ErrUnauthenticated answers 401, any other error 403. BearerSecret is the
// usual implementation.
type Authorizer func(r *http.Request) error

// Config configures a Server. Importer, Repositories, Store, Authorize and
// Notify.URL are required; everything else has a default.
type Config struct {
	// Importer runs pre-imports and final imports, e.g. a
	// *transfer.Importer reading the source layout and writing into the
	// host's transfer.Sink. Each run's context carries a
	// transfer.WithProgress callback: a *transfer.Importer (or a wrapper
	// that runs one under the context it is given) reports through it how
	// far the run has got (StatusResponse.Progress); any other Importer
	// simply reports no progress.
	Importer Importer
	// Repositories says which repositories exist (404 otherwise).
	Repositories Repositories
	// Native, when set, reports repositories the registry already serves
	// from its new metadata (created there, never to be imported): starts
	// answer 200 and GET answers status "native". Default: none.
	Native func(ctx context.Context, path string) (bool, error)
	// Store keeps import state and the notification outbox:
	// NewPostgresStore, or importservertest.NewStore in tests.
	Store Store
	// Authorize guards the import API. Required; BearerSecret(secret) is
	// the usual choice.
	Authorize Authorizer

	// MaxConcurrentImports is the most imports (pre and final) in progress
	// at once across every server sharing the Store; a start beyond it
	// answers 429. Default DefaultMaxConcurrentImports.
	MaxConcurrentImports int
	// PreImportTimeout and ImportTimeout bound one pre-import or final
	// import; a run that takes longer is stopped and recorded as failed.
	// Defaults DefaultPreImportTimeout and DefaultImportTimeout.
	PreImportTimeout time.Duration
	ImportTimeout    time.Duration
	// AllowFinalWithoutPreImport lets a final import start for a
	// repository whose last run is not a completed pre-import (never
	// pre-imported, or a failed final import since). By default that
	// answers 424, like a failed pre-import: the final import holds the
	// repository read-only and is meant to be short.
	AllowFinalWithoutPreImport bool
	// CheckBeforeFirstStart starts a repository's first pre-import only
	// once Repositories.Exists has answered. By default the pre-import
	// starts (and plans) while Exists is asked (Exists lists the source,
	// a storage round trip on every repository's first start), holds at
	// its plan until Exists answered, and is abandoned, unrecorded and
	// unnotified, when the repository is not found or the check fails
	// (Store.Abandon); the start is answered once it is. Meanwhile it
	// holds a unit of MaxConcurrentImports. Set it for an Importer that
	// may write before it reports its plan (see Importer). Config.Native
	// is always asked first.
	CheckBeforeFirstStart bool

	// Instance names this server among those sharing the Store. Imports it
	// runs are recorded as its own; a server that starts with the Instance
	// of one that died ends that one's imports at once (as failed, and
	// notifies them), instead of after StaleAfter. Use a stable, unique
	// name, such as a StatefulSet pod name. Default: host name and process
	// id (unique, never reused: leftovers are found by StaleAfter).
	Instance string
	// HeartbeatInterval is how often the server records that its imports
	// still run, and looks for stale ones. Default DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// StaleAfter is how long an import may go without a heartbeat before
	// any server ends it as failed. Default DefaultStaleAfter; at least
	// twice HeartbeatInterval.
	StaleAfter time.Duration

	// ShutdownGrace is how long Shutdown lets running imports finish
	// (within its context) before it cancels them. Default 0: Shutdown
	// cancels them at once.
	ShutdownGrace time.Duration

	// Notify configures the delivery of outcomes to the coordinator.
	Notify NotifyConfig
	// Guard configures WriteGuard.
	Guard GuardConfig

	// MaxBodyBytes bounds an import API request body (none is expected);
	// larger ones get 413. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives one line per start, outcome, refusal and delivery
	// problem. Default: slog.Default().
	Logger *slog.Logger
	// Observer is told about requests, imports, guarded writes and
	// deliveries (see prommetrics). Default: none.
	Observer Observer
}

// NotifyConfig configures the delivery of the notification outbox.
type NotifyConfig struct {
	// URL is the coordinator's notification endpoint prefix: an outcome of
	// repository <path> is PUT to URL + "/repositories/<path>/migration/status"
	// (what enqueuer.Handler serves). Required.
	URL string
	// Secret, when set, is sent as "Authorization: Bearer <Secret>".
	Secret string
	// Client sends the notifications. Default: a client of its own that
	// keeps up to Concurrency idle connections to the coordinator (Go's
	// default keeps 2, so deliveries at once would open new ones), closed
	// by Shutdown.
	Client *http.Client
	// Timeout bounds one attempt. Default 10s.
	Timeout time.Duration
	// Backoff is the wait after the first failed attempt; it doubles after
	// each one (with jitter) up to MaxBackoff. Defaults 1s and 5m.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxRefusals is how many refusals (4xx answers other than 401, 403,
	// 408, 425 and 429: the coordinator says the notification itself is
	// wrong, e.g. enqueuer.Handler's "wrong migration state") a
	// notification gets before it is given up and marked failed. Every
	// other failure is retried until a 2xx. Default 5.
	MaxRefusals int
	// Concurrency is how many notifications are delivered at once.
	// Default 8.
	Concurrency int
	// PollInterval is how often the outbox is read for due notifications
	// besides right after an outcome was recorded. Default 1s.
	PollInterval time.Duration
	// LeaseFor is how long a claimed notification is kept from other
	// servers. Default 1m (and at least twice Timeout).
	LeaseFor time.Duration
	// StatsInterval is how often Observer.OutboxChecked is told the
	// outbox's state. Default 15s.
	StatsInterval time.Duration
	// Retention is how long delivered notifications are kept. Default 7
	// days; negative keeps them forever.
	Retention time.Duration
}

// GuardConfig configures WriteGuard.
type GuardConfig struct {
	// AllowPreImportWrites lets writes through during a pre-import. By
	// default a write cancels the running pre-import (as GitLab's registry
	// did; the coordinator retries it later) and then goes through.
	AllowPreImportWrites bool
	// RetryAfter is the Retry-After of a write refused during a final
	// import. Default 60s.
	RetryAfter time.Duration
	// DrainTimeout bounds how long a final import waits for writes to its
	// repository that were let through before it started; when they do not
	// finish in time the import fails. Default 30s.
	DrainTimeout time.Duration
	// Classify says which repository a request writes to; write false
	// lets the request through unchecked. Default: DistributionWrite, the
	// /v2/ API's manifest, tag and blob writes.
	Classify func(r *http.Request) (repository string, write bool)
	// Refuse writes the answer to a refused write, in the registry's own
	// error format. Default: 503 with Retry-After and an OCI error body
	// (code UNAVAILABLE).
	Refuse func(w http.ResponseWriter, r *http.Request, ref Refusal)
}

// withDefaults checks c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.Importer == nil:
		return bad("Config.Importer is required")
	case c.Repositories == nil:
		return bad("Config.Repositories is required")
	case c.Store == nil:
		return bad("Config.Store is required")
	case c.Authorize == nil:
		return bad("Config.Authorize is required (BearerSecret, or a func admitting every request if the network is trusted)")
	case c.MaxConcurrentImports < 0, c.PreImportTimeout < 0, c.ImportTimeout < 0, c.HeartbeatInterval < 0,
		c.StaleAfter < 0, c.MaxBodyBytes < 0, c.ShutdownGrace < 0:
		return bad("negative limit or duration")
	}
	u, err := url.Parse(c.Notify.URL)
	if c.Notify.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return bad("Notify.URL %q must be an http(s) URL with a host and no query", c.Notify.URL)
	}
	c.Notify.URL = strings.TrimSuffix(c.Notify.URL, "/")
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.MaxConcurrentImports == 0 {
		c.MaxConcurrentImports = DefaultMaxConcurrentImports
	}
	def(&c.PreImportTimeout, DefaultPreImportTimeout)
	def(&c.ImportTimeout, DefaultImportTimeout)
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&c.StaleAfter, max(DefaultStaleAfter, 2*c.HeartbeatInterval))
	if c.StaleAfter < 2*c.HeartbeatInterval {
		return bad("StaleAfter %s must be at least twice HeartbeatInterval %s", c.StaleAfter, c.HeartbeatInterval)
	}
	if c.Instance == "" {
		host, _ := os.Hostname()
		c.Instance = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = ObserverFuncs{}
	}

	n := &c.Notify
	switch {
	case n.Timeout < 0, n.Backoff < 0, n.MaxBackoff < 0, n.MaxRefusals < 0, n.Concurrency < 0,
		n.PollInterval < 0, n.LeaseFor < 0, n.StatsInterval < 0:
		return bad("negative Notify limit or duration")
	}
	def(&n.Timeout, 10*time.Second)
	def(&n.Backoff, time.Second)
	def(&n.MaxBackoff, 5*time.Minute)
	n.MaxBackoff = max(n.MaxBackoff, n.Backoff)
	if n.MaxRefusals == 0 {
		n.MaxRefusals = 5
	}
	if n.Concurrency == 0 {
		n.Concurrency = 8
	}
	if n.Client == nil {
		t := defaultTransport()
		t.MaxIdleConnsPerHost = n.Concurrency
		n.Client = &http.Client{Transport: t}
	}
	def(&n.PollInterval, time.Second)
	def(&n.LeaseFor, max(time.Minute, 2*n.Timeout))
	if n.LeaseFor < 2*n.Timeout {
		return bad("Notify.LeaseFor %s must be at least twice Notify.Timeout %s", n.LeaseFor, n.Timeout)
	}
	def(&n.StatsInterval, 15*time.Second)
	def(&n.Retention, 7*24*time.Hour)

	g := &c.Guard
	if g.RetryAfter < 0 || g.DrainTimeout < 0 {
		return bad("negative Guard duration")
	}
	def(&g.RetryAfter, time.Minute)
	def(&g.DrainTimeout, 30*time.Second)
	if g.Classify == nil {
		g.Classify = DistributionWrite
	}
	if g.Refuse == nil {
		g.Refuse = RefuseUnavailable
	}
	return c, nil
}

// defaultTransport clones http.DefaultTransport, or, when the host replaced
// it with another RoundTripper (otelhttp does), starts from Go's defaults:
// an unchecked type assertion would panic in New.
func defaultTransport() *http.Transport {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
