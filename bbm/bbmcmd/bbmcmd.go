package bbmcmd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/internal/wait"
)

// ErrUsage reports command-line arguments Run does not understand; the
// usage was written to Stderr.
var ErrUsage = errors.New("bbmcmd: usage")

// ErrTimeout is returned by wait when its -timeout passes first.
var ErrTimeout = errors.New("bbmcmd: timed out waiting for migrations")

// Options configures Run.
type Options struct {
	// Worker runs migrations (run) and gives the Admin the other commands
	// use; its registered Work is what run can run. Required.
	Worker *bbm.SyncWorker
	// Name is the command's name in usage text. Default "bbm".
	Name string
	// Stdout and Stderr receive output and usage. Defaults os.Stdout and
	// os.Stderr.
	Stdout io.Writer
	Stderr io.Writer
	// Terminal redraws progress in place (a bar on one line) instead of
	// printing a line per update. Default: whether Stdout is a terminal.
	Terminal *bool
	// PollInterval is how often run and wait read progress. Default 1s.
	PollInterval time.Duration
	// LineInterval is how often progress is printed when Stdout is not a
	// terminal. Default 10s.
	LineInterval time.Duration
}

func (o Options) withDefaults() Options {
	if o.Name == "" {
		o.Name = "bbm"
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Terminal == nil {
		term := isTerminal(o.Stdout)
		o.Terminal = &term
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.LineInterval <= 0 {
		o.LineInterval = 10 * time.Second
	}
	return o
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// command is one subcommand.
type command struct {
	args string
	help string
	run  func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error
}

var commands = map[string]command{
	"status":  {args: "[-json] [NAME...]", help: "show state, progress, rate, ETA and failed jobs", run: (*cli).status},
	"pause":   {args: "NAME...", help: "stop starting jobs of the migrations", run: (*cli).pause},
	"resume":  {args: "NAME...", help: "make paused migrations active again", run: (*cli).resume},
	"retry":   {args: "NAME...", help: "retry failed migrations (their failed jobs get new attempts)", run: (*cli).retry},
	"run":     {args: "NAME...", help: "run the migrations to the end in this process", run: (*cli).runMigrations},
	"wait":    {args: "[-timeout D] NAME...", help: "wait until the migrations are finished", run: (*cli).wait},
	"require": {args: "NAME...", help: "fail unless the migrations are finished (a deploy gate)", run: (*cli).require},
}

type cli struct {
	o     Options
	admin *bbm.Admin
	shown string // the progress line watch printed last
}

// Run runs the command in args (args[0] is the subcommand; the program
// name is not included). Errors wrap ErrUsage for bad arguments, else what
// the command met (bbm.ErrMigrationNotFound, bbm.ErrMigrationFailed,
// bbm.ErrNotFinished, ErrTimeout, ...).
func Run(ctx context.Context, args []string, o Options) error {
	o = o.withDefaults()
	if o.Worker == nil {
		return errors.New("bbmcmd: Options.Worker is required")
	}
	c := &cli{o: o, admin: o.Worker.Admin()}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		c.usage()
		if len(args) == 0 {
			return fmt.Errorf("%w: no command", ErrUsage)
		}
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		c.usage()
		return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
	}
	fs := flag.NewFlagSet(o.Name+" "+args[0], flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(o.Stderr, "usage: %s %s %s\n  %s\n", o.Name, args[0], cmd.args, cmd.help)
		fs.PrintDefaults()
	}
	return cmd.run(c, ctx, fs, args[1:])
}

func (c *cli) usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(c.o.Stderr, "usage: %s COMMAND [ARGS]\n\ncommands:\n", c.o.Name)
	for _, n := range names {
		fmt.Fprintf(c.o.Stderr, "  %-8s %-22s %s\n", n, commands[n].args, commands[n].help)
	}
}

// parse parses flags and requires at least one name unless optional.
func parse(fs *flag.FlagSet, args []string, namesOptional bool) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() == 0 && !namesOptional {
		fs.Usage()
		return nil, fmt.Errorf("%w: %s needs at least one migration name", ErrUsage, fs.Name())
	}
	return fs.Args(), nil
}

// progresses reads the named migrations' progress, or all of them.
func (c *cli) progresses(ctx context.Context, names []string) ([]*bbm.Progress, error) {
	if len(names) == 0 {
		return c.admin.StatusAll(ctx)
	}
	var out []*bbm.Progress
	var errs []error
	for _, n := range names {
		p, err := c.admin.Status(ctx, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

func (c *cli) status(ctx context.Context, fs *flag.FlagSet, args []string) error {
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	names, err := parse(fs, args, true)
	if err != nil {
		return err
	}
	ps, err := c.progresses(ctx, names)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.o.Stdout)
		enc.SetIndent("", "  ")
		out := make([]statusJSON, len(ps))
		for i, p := range ps {
			out[i] = toJSON(p)
		}
		return enc.Encode(out)
	}
	writeTable(c.o.Stdout, ps)
	return nil
}

// statusJSON is one migration in status -json.
type statusJSON struct {
	Name          string            `json:"name"`
	Status        bbm.Status        `json:"status"`
	Table         string            `json:"table"`
	Key           []string          `json:"key"`
	Work          string            `json:"work"`
	Delivery      bbm.Delivery      `json:"delivery"`
	Strategy      bbm.Strategy      `json:"strategy"`
	OnFailure     bbm.FailurePolicy `json:"on_failure"`
	ProgressPct   float64           `json:"progress_percent"`
	RowsDone      int64             `json:"rows_done"`
	RowsTotal     int64             `json:"rows_total"`
	RowsExact     bool              `json:"rows_total_exact"`
	RowsPerSecond float64           `json:"rows_per_second"`
	ETASeconds    *float64          `json:"eta_seconds"` // null when unknown
	Jobs          int               `json:"jobs"`
	JobsRunning   int               `json:"jobs_running"`
	JobsFailed    int               `json:"jobs_failed"`
	ErrorCode     bbm.ErrorCode     `json:"error_code,omitempty"`
	Error         string            `json:"error,omitempty"`
	FailedJobs    []failedJobJSON   `json:"failed_jobs,omitempty"`
}

type failedJobJSON struct {
	ID        int64         `json:"id"`
	Start     bbm.Key       `json:"start"`
	End       bbm.Key       `json:"end"`
	Attempts  int           `json:"attempts"`
	ErrorCode bbm.ErrorCode `json:"error_code"`
	Error     string        `json:"error"`
}

func toJSON(p *bbm.Progress) statusJSON {
	m := p.Migration
	s := statusJSON{Name: m.Name, Status: m.Status, Table: m.QualifiedTable(), Key: m.KeyColumns, Work: m.WorkName,
		Delivery: m.Delivery, Strategy: m.Strategy, OnFailure: m.OnFailure, ProgressPct: round(p.Percent, 1),
		RowsDone: p.Jobs.RowsDone, RowsTotal: p.RowsTotal, RowsExact: p.Exact, RowsPerSecond: round(p.Rate, 0),
		Jobs: p.Jobs.Total, JobsRunning: p.Jobs.Running, JobsFailed: p.Jobs.Failed, ErrorCode: m.ErrorCode, Error: m.ErrorMessage}
	if p.ETA >= 0 {
		eta := round(p.ETA.Seconds(), 0)
		s.ETASeconds = &eta
	}
	for _, j := range p.FailedJobs {
		s.FailedJobs = append(s.FailedJobs, failedJobJSON{ID: j.ID, Start: j.Start, End: j.End, Attempts: j.Attempts,
			ErrorCode: j.ErrorCode, Error: j.ErrorMessage})
	}
	return s
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// writeTable prints one line per migration and, under it, its failed jobs.
func writeTable(w io.Writer, ps []*bbm.Progress) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tPROGRESS\tROWS\tROWS/S\tETA\tDELIVERY\tFAILED JOBS")
	for _, p := range ps {
		m := p.Migration
		approx := "~"
		if p.Exact {
			approx = ""
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f%%\t%d/%s%d\t%.0f\t%s\t%s\t%d\n", m.Name, m.Status, p.Percent, p.Jobs.RowsDone,
			approx, p.RowsTotal, p.Rate, eta(p.ETA), m.Delivery, p.Jobs.Failed)
	}
	tw.Flush()
	for _, p := range ps {
		m := p.Migration
		if m.ErrorCode != bbm.CodeNone {
			fmt.Fprintf(w, "%s: %s: %s\n", m.Name, m.ErrorCode, m.ErrorMessage)
		}
		for _, j := range p.FailedJobs {
			fmt.Fprintf(w, "%s: job %d [%s, %s] failed %d times, last: %s: %s\n", m.Name, j.ID, j.Start, j.End,
				j.Attempts, j.ErrorCode, j.ErrorMessage)
		}
	}
}

func eta(d time.Duration) string {
	switch {
	case d < 0:
		return "unknown"
	case d == 0:
		return "-"
	}
	return d.Round(time.Second).String()
}

func (c *cli) move(ctx context.Context, fs *flag.FlagSet, args []string, verb string,
	fn func(context.Context, string) (*bbm.Migration, error)) error {
	names, err := parse(fs, args, false)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		m, err := fn(ctx, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(c.o.Stdout, "%s: %s (%s)\n", m.Name, verb, m.Status)
	}
	return errors.Join(errs...)
}

func (c *cli) pause(ctx context.Context, fs *flag.FlagSet, args []string) error {
	return c.move(ctx, fs, args, "paused", c.admin.Pause)
}

func (c *cli) resume(ctx context.Context, fs *flag.FlagSet, args []string) error {
	return c.move(ctx, fs, args, "resumed", c.admin.Resume)
}

func (c *cli) retry(ctx context.Context, fs *flag.FlagSet, args []string) error {
	return c.move(ctx, fs, args, "retrying", c.admin.RetryFailed)
}

func (c *cli) require(ctx context.Context, fs *flag.FlagSet, args []string) error {
	names, err := parse(fs, args, false)
	if err != nil {
		return err
	}
	if err := c.admin.RequireFinished(ctx, names...); err != nil {
		return err
	}
	fmt.Fprintf(c.o.Stdout, "all %d migrations are finished\n", len(names))
	return nil
}

// runMigrations runs the named migrations in this process while a
// goroutine shows their progress.
func (c *cli) runMigrations(ctx context.Context, fs *flag.FlagSet, args []string) error {
	names, err := parse(fs, args, false)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	shown := make(chan struct{})
	go func() {
		defer close(shown)
		c.watch(ctx, names, done)
	}()
	err = c.o.Worker.RunMigrations(ctx, names...)
	close(done)
	<-shown
	c.final(context.WithoutCancel(ctx), names)
	return err
}

// wait polls until every named migration is finished, one failed, or the
// timeout passes.
func (c *cli) wait(ctx context.Context, fs *flag.FlagSet, args []string) error {
	timeout := fs.Duration("timeout", 0, "give up after this long (0: no limit)")
	names, err := parse(fs, args, false)
	if err != nil {
		return err
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, *timeout, ErrTimeout)
		defer cancel()
	}
	done := make(chan struct{})
	shown := make(chan struct{})
	go func() {
		defer close(shown)
		c.watch(ctx, names, done)
	}()
	err = c.until(ctx, names)
	close(done)
	<-shown
	c.final(context.WithoutCancel(ctx), names)
	return err
}

func (c *cli) until(ctx context.Context, names []string) error {
	for {
		ps, err := c.progresses(ctx, names)
		if err != nil {
			if errors.Is(context.Cause(ctx), ErrTimeout) {
				return ErrTimeout
			}
			return err
		}
		finished := 0
		var failed []error
		for _, p := range ps {
			switch p.Migration.Status {
			case bbm.StatusFinished:
				finished++
			case bbm.StatusFailed:
				failed = append(failed, fmt.Errorf("%w: %q: %s: %s", bbm.ErrMigrationFailed, p.Migration.Name,
					p.Migration.ErrorCode, p.Migration.ErrorMessage))
			}
		}
		if len(failed) > 0 {
			return errors.Join(failed...)
		}
		if finished == len(ps) {
			return nil
		}
		if err := wait.Sleep(ctx, c.o.PollInterval); err != nil {
			if errors.Is(context.Cause(ctx), ErrTimeout) {
				return fmt.Errorf("%w: %d of %d finished", ErrTimeout, finished, len(ps))
			}
			return err
		}
	}
}
