package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"
)

// config is everything the host can be told. Zero fields get the defaults
// documented on them (run applies withDefaults); the zero value runs the demo: a throwaway PostgreSQL, a temp directory,
// the embedded routing rules.
type config struct {
	// DatabaseURL is the PostgreSQL to use. Default: a throwaway server
	// (storagetest.Start), stopped at exit.
	DatabaseURL string
	// Listen is the address of the notification endpoint. Default
	// 127.0.0.1:0 (a free loopback port, printed at start).
	Listen string
	// Dir holds the source and destination fileblob directories. Default: a
	// new temp dir, removed at exit unless Keep. Reusing a Dir (and a
	// DatabaseURL) resumes where an earlier run stopped.
	Dir  string
	Keep bool
	// RulesFile holds the routing rules that give each job kind its queue.
	// Default: the embedded rules.yaml.
	RulesFile string
	// Repositories and Seed shape the generated source registry. Defaults
	// 12 and 1.
	Repositories int
	Seed         uint64
	// Capacity is how many imports may be in progress at once, at the
	// enqueuer and at the registry. Default 3.
	Capacity int
	// BackfillRows and BatchSize shape the backfill. Defaults 20,000 and
	// 1,000.
	BackfillRows int
	BatchSize    int
	// EnqueueEvery is how often the enqueuer runs besides after each
	// notification. Default 1s.
	EnqueueEvery time.Duration
	// BackfillInterval is the bbm worker's Interval. Default 200ms.
	BackfillInterval time.Duration
	// LeaseTTL is the enqueuer lease's ttl. Default 30s (renewed every
	// 10s while a run goes on).
	LeaseTTL time.Duration
	// ImportDelay and BatchDelay make every import pass and every backfill
	// batch take at least that long, to watch (or test) a host that is
	// busy. Default 0.
	ImportDelay time.Duration
	BatchDelay  time.Duration
	// StatusEvery is how often a progress line is printed. Default 2s;
	// negative: never.
	StatusEvery time.Duration
	// ShutdownTimeout bounds the graceful part of a shutdown: running
	// imports and the running backfill job get this long to finish before
	// they are cancelled (imports are then recorded as failed and
	// notified, and retried by the enqueuer; the backfill job by the next
	// run).
	// Default 30s.
	ShutdownTimeout time.Duration
	// ExitWhenDone shuts down once every repository is imported and the
	// backfill finished, instead of waiting for a signal.
	ExitWhenDone bool
	// Secret authenticates notifications. Default: random per run.
	Secret string
	// AdminToken allows the dashboard's actions to a browser that opened
	// /ferry-login?token=<AdminToken>. Default: random per run (printed).
	AdminToken string
	// DashboardRefresh is how often the dashboard's pages reload. Default
	// 5s; negative: never.
	DashboardRefresh time.Duration
	// DashboardForecastMaxAge is how long one forecast serves the
	// dashboard. Default (0): dashboard.DefaultForecastMaxAge.
	DashboardForecastMaxAge time.Duration
	// Verbose logs every job at info level (to stderr); otherwise only
	// warnings and errors.
	Verbose bool
}

func (c config) withDefaults() config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.AdminToken == "" {
		c.AdminToken = randomSecret()
	}
	def(&c.Repositories, 12)
	def(&c.Capacity, 3)
	def(&c.BackfillRows, 20_000)
	def(&c.BatchSize, 1_000)
	defDur(&c.EnqueueEvery, time.Second)
	defDur(&c.BackfillInterval, 200*time.Millisecond)
	defDur(&c.LeaseTTL, 30*time.Second)
	defDur(&c.StatusEvery, 2*time.Second)
	defDur(&c.ShutdownTimeout, 30*time.Second)
	return c
}

var errConfig = errors.New("registryhost: invalid config")

func (c config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{errConfig}, args...)...)
	}
	switch {
	case c.Repositories < 1 || c.Repositories > 1000:
		return bad("-repos %d: want 1..1000", c.Repositories)
	case c.Capacity < 1:
		return bad("-capacity %d: want at least 1", c.Capacity)
	case c.BackfillRows < 1:
		return bad("-rows %d: want at least 1", c.BackfillRows)
	case c.BatchSize < 1:
		return bad("-batch %d: want at least 1", c.BatchSize)
	case c.EnqueueEvery <= 0, c.BackfillInterval <= 0, c.LeaseTTL <= 0, c.ShutdownTimeout <= 0:
		return bad("-enqueue-every, -backfill-interval, -lease-ttl and -shutdown-timeout must be positive")
	case c.ImportDelay < 0, c.BatchDelay < 0:
		return bad("-import-delay and -batch-delay must not be negative")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("-listen %q: %v", c.Listen, err)
	}
	return nil
}

// parseFlags reads the command line into a config.
func parseFlags(args []string, out io.Writer) (config, error) {
	fs := flag.NewFlagSet("registryhost", flag.ContinueOnError)
	fs.SetOutput(out)
	var c config
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL to use (default: a throwaway server)")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:0", "address of the notification endpoint")
	fs.StringVar(&c.Dir, "dir", "", "directory of the source and destination buckets (default: a temp dir); reuse it to resume")
	fs.BoolVar(&c.Keep, "keep", false, "keep the temp dir")
	fs.StringVar(&c.RulesFile, "rules", "", "routing rules file, a YAML or JSON list of [query, queue] (default: the embedded rules.yaml)")
	fs.IntVar(&c.Repositories, "repos", 12, "repositories in the generated source registry")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the generated source registry")
	fs.IntVar(&c.Capacity, "capacity", 3, "imports in progress at once")
	fs.IntVar(&c.BackfillRows, "rows", 20_000, "rows of the table the backfill fills")
	fs.IntVar(&c.BatchSize, "batch", 1_000, "rows per backfill job")
	fs.DurationVar(&c.EnqueueEvery, "enqueue-every", time.Second, "how often the enqueuer runs besides after notifications")
	fs.DurationVar(&c.BackfillInterval, "backfill-interval", 200*time.Millisecond, "the bbm worker's interval between batches")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", 30*time.Second, "ttl of the enqueuer's lease")
	fs.DurationVar(&c.ImportDelay, "import-delay", 0, "make every import pass take at least this long (to watch a busy host)")
	fs.DurationVar(&c.BatchDelay, "batch-delay", 0, "make every backfill batch take at least this long")
	fs.DurationVar(&c.StatusEvery, "status-every", 2*time.Second, "how often to print a progress line (negative: never)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long running jobs get to finish on SIGINT/SIGTERM")
	fs.BoolVar(&c.ExitWhenDone, "exit-when-done", false, "shut down once everything is imported and backfilled")
	fs.StringVar(&c.Secret, "secret", "", "shared secret of the notification endpoint (default: random)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "token that allows the dashboard's actions after /ferry-login?token= (default: random, printed)")
	fs.DurationVar(&c.DashboardRefresh, "dashboard-refresh", 5*time.Second, "how often the dashboard's pages reload (negative: never)")
	fs.DurationVar(&c.DashboardForecastMaxAge, "dashboard-forecast-max-age", 0, "how long one forecast serves the dashboard (0: the dashboard's default, 30s; negative: every request)")
	fs.BoolVar(&c.Verbose, "v", false, "log every job (info level, to stderr)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("%w: unexpected arguments %q", errConfig, fs.Args())
	}
	// Flags carry their defaults already: a zero here was asked for.
	return c, c.validate()
}
