package dashboard

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/enqueuer"
)

// The types below are what the pages render and what the JSON endpoints
// answer (see the package documentation): one value per page, built from
// the stores on each request. Times are RFC 3339 in JSON; durations are
// Seconds.

// Seconds is a duration that JSON encodes as a number of seconds, or null
// when negative (unknown).
type Seconds time.Duration

// MarshalJSON implements json.Marshaler.
func (s Seconds) MarshalJSON() ([]byte, error) {
	if s < 0 {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, math.Round(time.Duration(s).Seconds()*1000)/1000, 'f', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = -1
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*s = Seconds(f * float64(time.Second))
	return nil
}

// Duration is s as a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(s) }

// Known reports whether s is known (not negative).
func (s Seconds) Known() bool { return s >= 0 }

// Overview is the overview page (GET / and GET /api/overview).
type Overview struct {
	Title       string    `json:"title"`
	GeneratedAt time.Time `json:"generated_at"`
	// Migrations are bbm's migrations, by ID; nil without Config.Migrations.
	Migrations *MigrationsSection `json:"migrations,omitempty"`
	// Imports sums up the enqueuer's repositories; nil without
	// Config.Repositories.
	Imports *ImportsSection `json:"imports,omitempty"`
	// Leases are Config.Leases' keys, in order.
	Leases []LeaseStatus `json:"leases,omitempty"`
	// Registry is the import server's side; nil without Config.Registry
	// and Config.Transfers.
	Registry *RegistrySection `json:"registry,omitempty"`
}

// MigrationsSection lists the migrations, or says why it cannot.
type MigrationsSection struct {
	List  []Migration `json:"list"`
	Error string      `json:"error,omitempty"`
}

// Migration is one bbm migration with its progress.
type Migration struct {
	Name      string     `json:"name"`
	Status    bbm.Status `json:"status"`
	Table     string     `json:"table"`
	Key       []string   `json:"key"`
	Work      string     `json:"work"`
	BatchSize int        `json:"batch_size"`
	Strategy  string     `json:"strategy"`
	OnFailure string     `json:"on_failure"`
	// Percent is the share of RowsTotal done; RowsExact says whether
	// RowsTotal is exact or the planner's estimate.
	Percent       float64 `json:"percent"`
	RowsDone      int64   `json:"rows_done"`
	RowsTotal     int64   `json:"rows_total"`
	RowsExact     bool    `json:"rows_exact"`
	RowsPerSecond float64 `json:"rows_per_second"`
	// ETA is null when unknown (nothing finished yet, paused, failed).
	ETA  Seconds   `json:"eta_seconds"`
	Jobs JobCounts `json:"jobs"`
	// Error is the migration's error code and message, when it failed.
	Error string `json:"error,omitempty"`
	// FailedJobs are its failed jobs with their last errors (at most 20).
	FailedJobs []Job      `json:"failed_jobs,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// JobCounts sums up a migration's jobs.
type JobCounts struct {
	Total    int `json:"total"`
	Running  int `json:"running"`
	Finished int `json:"finished"`
	Failed   int `json:"failed"`
}

// Job is one job (key range) of a migration.
type Job struct {
	ID     int64         `json:"id"`
	Start  string        `json:"start"`
	End    string        `json:"end"`
	Rows   int           `json:"rows"`
	Status bbm.JobStatus `json:"status"`
	// Attempts counts the attempts started, the running one included.
	Attempts   int        `json:"attempts"`
	Error      string     `json:"error,omitempty"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// Took is how long the latest finished or failed attempt took.
	Took Seconds `json:"took_seconds"`
}

// ImportsSection sums up the enqueuer's repositories.
type ImportsSection struct {
	// States has the count of every state, in enqueuer.States order.
	States     []StateCount `json:"states"`
	Total      int          `json:"total"`
	InProgress int          `json:"in_progress"`
	// Waiting can be started by a run (new and aborted ones, deferred
	// ones excluded); Deferred wait for a filter.
	Waiting  int `json:"waiting"`
	Deferred int `json:"deferred"`
	// Capacity is Config.Capacity's answer; null without it.
	Capacity *int `json:"capacity"`
	// Forecast is Config.Forecast's answer; null without it.
	Forecast *Forecast `json:"forecast"`
	Error    string    `json:"error,omitempty"`
}

// StateCount is how many repositories are in one state.
type StateCount struct {
	State enqueuer.State `json:"state"`
	Count int            `json:"count"`
}

// Forecast is how long the imports that are left are expected to take
// (enqueuer.Forecast): each waiting repository's duration is read off the
// measured durations of the latest finished imports by tag count, and the
// enqueuer's order is replayed on the capacity.
type Forecast struct {
	// At is when the forecast was made.
	At time.Time `json:"at"`
	// Pending is true while the first forecast is being made (in the
	// background: no page waits for one); the next page shows it.
	Pending bool `json:"pending,omitempty"`
	// Known is false until an import has finished: without a measured
	// duration there is nothing to forecast from. Unknown then says why
	// (enqueuer.Forecast.Unknown).
	Known   bool   `json:"known"`
	Unknown string `json:"unknown,omitempty"`
	// Progressed counts the imports in progress whose rest came from the
	// registry's progress (enqueuer.Config.ForecastProgress).
	Progressed int `json:"progressed,omitempty"`
	// Remaining counts the repositories it covers: those in progress and
	// those waiting that can start (deferred ones wait for their filter).
	Remaining int `json:"remaining"`
	// Capacity is the number of imports at once it assumed.
	Capacity int `json:"capacity"`
	// Left is the expected time until the last of them is imported, ETA
	// when that is; null while not Known.
	Left Seconds    `json:"left_seconds"`
	ETA  *time.Time `json:"eta"`
	// Buckets are the tag-count buckets with measured, running or waiting
	// repositories, smallest first.
	Buckets []ForecastBucket `json:"buckets"`
	Error   string           `json:"error,omitempty"`
}

// ForecastBucket is one tag-count bucket of a Forecast.
type ForecastBucket struct {
	// MinTags and MaxTags bound the bucket; MaxTags is null for the last,
	// unbounded one.
	MinTags int  `json:"min_tags"`
	MaxTags *int `json:"max_tags"`
	// Finished counts the measured imports; MeanTags and MeanDuration are
	// their means (MeanDuration null when none finished).
	Finished     int     `json:"finished"`
	MeanTags     float64 `json:"mean_tags"`
	MeanDuration Seconds `json:"mean_duration_seconds"`
	// InProgress and Waiting count the repositories of the bucket being
	// imported and waiting (of the waiting ones the enqueuer's forecast
	// schedules one by one; the rest are spread over the capacity).
	InProgress int `json:"in_progress"`
	Waiting    int `json:"waiting"`
}

// LeaseStatus is who holds one of Config.Leases' keys.
type LeaseStatus struct {
	Title  string `json:"title"`
	Key    string `json:"key"`
	Held   bool   `json:"held"`
	Holder string `json:"holder,omitempty"`
	Token  int64  `json:"token"`
	// ExpiresAt and ExpiresIn are set while Held.
	ExpiresAt *time.Time `json:"expires_at"`
	ExpiresIn Seconds    `json:"expires_in_seconds"`
	// Breakable is true when the Locker can end the lease (break_lease).
	Breakable bool   `json:"breakable"`
	Error     string `json:"error,omitempty"`
}

// RegistrySection is the import server's side.
type RegistrySection struct {
	// Outbox is null without Config.Registry.
	Outbox *Outbox `json:"outbox"`
	// Transfers are the copies running in this process (Config.Transfers).
	Transfers []LiveTransfer `json:"transfers,omitempty"`
	Error     string         `json:"error,omitempty"`
}

// Outbox counts the import server's outcomes not delivered yet.
type Outbox struct {
	Pending int `json:"pending"`
	// OldestPending is the age of the oldest pending one (0 when none).
	OldestPending Seconds `json:"oldest_pending_seconds"`
	// Failed were given up after the coordinator kept refusing them.
	Failed int `json:"failed"`
}

// RegistryImport is the registry's record of a repository's last import
// run (transfer/importserver's Import).
type RegistryImport struct {
	// Type is "pre" or "final"; Status the import protocol's status
	// (pre_import_in_progress, import_complete, ...).
	Type   string `json:"type"`
	Status string `json:"status"`
	// Detail explains Status: the error of a failed run, why it was
	// canceled.
	Detail          string     `json:"detail,omitempty"`
	Run             int64      `json:"run"`
	Owner           string     `json:"owner,omitempty"`
	CancelRequested bool       `json:"cancel_requested"`
	BlobsCopied     int64      `json:"blobs_copied"`
	BytesCopied     int64      `json:"bytes_copied"`
	StartedAt       *time.Time `json:"started_at"`
	HeartbeatAt     *time.Time `json:"heartbeat_at"`
	FinishedAt      *time.Time `json:"finished_at"`
}

// LiveTransfer is a repository whose blobs are being copied now.
type LiveTransfer struct {
	Repository     string  `json:"repository"`
	Pass           string  `json:"pass"`
	BlobsCopied    int64   `json:"blobs_copied"`
	BlobsSkipped   int64   `json:"blobs_skipped"`
	BytesCopied    int64   `json:"bytes_copied"`
	BytesPerSecond float64 `json:"bytes_per_second"`
	Elapsed        Seconds `json:"elapsed_seconds"`
}

// MigrationPage is a migration's page (GET /migrations/{name} and
// GET /api/migrations/{name}).
type MigrationPage struct {
	Title       string    `json:"title"`
	GeneratedAt time.Time `json:"generated_at"`
	Migration   Migration `json:"migration"`
	// Jobs is one page of jobs in key order; Filter the status asked
	// for ("" for all); Next the After of the next page (0 at the end).
	Jobs   []Job         `json:"jobs"`
	Filter bbm.JobStatus `json:"filter,omitempty"`
	After  int64         `json:"after,omitempty"`
	Next   int64         `json:"next,omitempty"`
	Limit  int           `json:"limit"`
}

// Repository is one repository as the enqueuer and, when present, the
// registry see it.
type Repository struct {
	Path  string         `json:"path"`
	State enqueuer.State `json:"state"`
	// InState is how long it has been in State.
	InState        Seconds   `json:"in_state_seconds"`
	StateChangedAt time.Time `json:"state_changed_at"`
	TagCount       int       `json:"tag_count"`
	RetryCount     int       `json:"retry_count"`
	SkipReason     string    `json:"skip_reason,omitempty"`
	AbortReason    string    `json:"abort_reason,omitempty"`
	DeferReason    string    `json:"defer_reason,omitempty"`
	// Registry is the registry's last import run (Config.Registry), on the
	// in-progress list and the repository's page.
	Registry *RegistryImport `json:"registry,omitempty"`
	// Transfer is its copy running in this process (Config.Transfers).
	Transfer *LiveTransfer `json:"transfer,omitempty"`
}

// Reason is why the repository is where it is: its skip reason when
// skipped, abort reason when aborted, defer reason when deferred; "" else.
func (r Repository) Reason() string {
	switch {
	case r.State == enqueuer.StateImportSkipped:
		return r.SkipReason
	case r.State == enqueuer.StateImportAborted:
		return r.AbortReason
	}
	return r.DeferReason
}

// ImportsPage is the imports page (GET /imports and GET /api/imports).
type ImportsPage struct {
	Title       string         `json:"title"`
	GeneratedAt time.Time      `json:"generated_at"`
	Summary     ImportsSection `json:"summary"`
	// Repositories is one page of repositories in path order, in State
	// (every state when empty) under Prefix; Next is the After of the
	// next page ("" at the end).
	Repositories []Repository   `json:"repositories"`
	State        enqueuer.State `json:"state,omitempty"`
	Prefix       string         `json:"prefix,omitempty"`
	After        string         `json:"after,omitempty"`
	Next         string         `json:"next,omitempty"`
	Limit        int            `json:"limit"`
	// InProgress are the repositories holding capacity, longest first
	// (at most Limit of them).
	InProgress []Repository `json:"in_progress"`
	// Aborted and Skipped are the latest failures with their reasons.
	Aborted []Repository `json:"aborted"`
	Skipped []Repository `json:"skipped"`
}

// RepositoryPage is a repository's page (GET /repository?path= and GET
// /api/repository?path=).
type RepositoryPage struct {
	Title       string     `json:"title"`
	GeneratedAt time.Time  `json:"generated_at"`
	Repository  Repository `json:"repository"`
	// History: when each state was last entered (null if never).
	PreImportingAt  *time.Time `json:"pre_importing_at"`
	PreImportDoneAt *time.Time `json:"pre_import_done_at"`
	ImportingAt     *time.Time `json:"importing_at"`
	ImportDoneAt    *time.Time `json:"import_done_at"`
	AbortedAt       *time.Time `json:"aborted_at"`
	SkippedAt       *time.Time `json:"skipped_at"`
	CreatedAt       time.Time  `json:"created_at"`
}

// ErrorBody is what JSON endpoints answer on an error, with a 4xx or 5xx
// status.
type ErrorBody struct {
	Error string `json:"error"`
}

// timePtr is t, or nil for the zero time (JSON null).
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
