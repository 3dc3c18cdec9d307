package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/storage"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/importserver"
)

// snapshot is where the migration and the backfill are.
type snapshot struct {
	// Repositories counts the enqueuer's repositories by state.
	Repositories map[enqueuer.State]int `json:"repositories"`
	Total        int                    `json:"total"`
	// Forecast is the enqueuer's forecast of the time left, from the
	// measured durations by tag-count bucket and the capacity; unknown
	// (false) until an import finished.
	ForecastKnown bool          `json:"forecast_known"`
	Forecast      time.Duration `json:"forecast_remaining_ns"`
	// Imports counts the import server's repositories by the status of
	// their last pass; Running are in progress; Unnotified are outcomes
	// in its outbox not delivered yet. BlobsCopied and BytesCopied are
	// what this run's passes copied.
	Imports     map[importserver.Status]int `json:"imports"`
	Running     int                         `json:"running"`
	Unnotified  int                         `json:"unnotified"`
	BlobsCopied int64                       `json:"blobs_copied"`
	BytesCopied int64                       `json:"bytes_copied"`

	Backfill        bbm.Status `json:"backfill_status"`
	BackfillPercent float64    `json:"backfill_percent"`
	BackfillJobs    int        `json:"backfill_jobs"`
	BackfillError   string     `json:"backfill_error,omitempty"`
}

func (h *host) snapshot(ctx context.Context) (snapshot, error) {
	ctx = storage.UsePrimary(ctx)
	s := snapshot{Repositories: map[enqueuer.State]int{}, Imports: map[importserver.Status]int{},
		BlobsCopied: h.copied.blobs.Load(), BytesCopied: h.copied.bytes.Load()}
	// One statement counts every state at one instant (the forecast's
	// Store.Count): counting state by state could miss a repository that
	// an abort and a retry moved to a state already counted, and call the
	// imports done.
	f, err := h.enq.Forecast(ctx, enqueuer.ForecastOptions{})
	if err != nil {
		return s, err
	}
	for _, st := range enqueuer.States {
		s.Repositories[st] = f.Counts.States[st]
	}
	s.Total = f.Counts.Total()
	s.ForecastKnown, s.Forecast = f.Known, f.Remaining
	rows, err := h.db.Query(ctx, `SELECT status, count(*) FROM ferry_importserver_imports GROUP BY status`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			rows.Close()
			return s, err
		}
		s.Imports[importserver.Status(status)] = n
		if importserver.Status(status).InProgress() {
			s.Running += n
		}
	}
	if err := rows.Err(); err != nil {
		return s, err
	}
	if err := h.db.QueryRow(ctx, `SELECT count(*) FROM ferry_importserver_notifications WHERE state = 'pending'`).Scan(&s.Unnotified); err != nil {
		return s, err
	}
	p, err := h.admin.Status(ctx, backfillMigration)
	if err != nil {
		return s, err
	}
	s.Backfill, s.BackfillPercent, s.BackfillJobs = p.Migration.Status, p.Percent, p.Jobs.Finished
	s.BackfillError = p.Migration.ErrorMessage
	return s, nil
}

// importsDone reports whether every repository reached an end state.
func (s snapshot) importsDone() bool {
	return s.Repositories[enqueuer.StateImportDone]+s.Repositories[enqueuer.StateImportSkipped] == s.Total
}

// done reports whether nothing is left to do.
func (s snapshot) done() bool {
	backfillOver := s.Backfill == bbm.StatusFinished || s.Backfill == bbm.StatusFailed
	return s.importsDone() && backfillOver && s.Running == 0 && s.Unnotified == 0
}

// err says what went wrong once done: a failed backfill or skipped
// repositories.
func (s snapshot) err() error {
	var problems []string
	if s.Backfill == bbm.StatusFailed {
		problems = append(problems, "the backfill failed: "+s.BackfillError)
	}
	if n := s.Repositories[enqueuer.StateImportSkipped]; n > 0 {
		problems = append(problems, fmt.Sprintf("%d repositories were skipped", n))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("registryhost: %s", strings.Join(problems, "; "))
}

// String is the progress line.
func (s snapshot) String() string {
	inProgress := 0
	for _, st := range enqueuer.InProgressStates {
		inProgress += s.Repositories[st]
	}
	left := "forecast --"
	if s.ForecastKnown {
		left = "forecast " + s.Forecast.Round(time.Second).String() + " left"
	}
	return fmt.Sprintf("imports: %d/%d done, %d in progress, %d waiting, %d aborted, %s | registry passes running: %d | backfill: %s %.1f%%",
		s.Repositories[enqueuer.StateImportDone], s.Total, inProgress, s.Repositories[enqueuer.StateDefault],
		s.Repositories[enqueuer.StateImportAborted], left, s.Running, s.Backfill, s.BackfillPercent)
}

// long is the summary printed at shutdown.
func (s snapshot) long(dst string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  repositories: %d of %d imported", s.Repositories[enqueuer.StateImportDone], s.Total)
	for _, st := range enqueuer.States {
		if n := s.Repositories[st]; n > 0 && st != enqueuer.StateImportDone {
			fmt.Fprintf(&b, ", %d %s", n, st)
		}
	}
	fmt.Fprintf(&b, "\n  registry: %d imported, %d running, %d outcomes undelivered; this run copied %d blobs (%s), verified, into %s",
		s.Imports[importserver.StatusImportComplete], s.Running, s.Unnotified, s.BlobsCopied, transfer.FormatBytes(s.BytesCopied), dst)
	fmt.Fprintf(&b, "\n  backfill %s: %s, %.1f%% in %d jobs", backfillMigration, s.Backfill, s.BackfillPercent, s.BackfillJobs)
	return b.String()
}

// serveStatus answers GET /status with the snapshot as JSON.
func (h *host) serveStatus(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), 5*time.Second)
	defer cancel()
	s, err := h.snapshot(ctx)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}
