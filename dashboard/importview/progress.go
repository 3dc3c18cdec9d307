package importview

import (
	"sync"
	"time"

	"github.com/ferryhq/ferry/dashboard"
	"github.com/ferryhq/ferry/transfer"
)

// Progress keeps the latest progress of every repository a
// transfer.Importer is copying in this process, for the dashboard
// (dashboard.Config.Transfers). Pass its Record method as
// transfer.ImportOptions.Progress. It is safe for concurrent use; a
// repository is dropped when its copy ends.
//
// Each Import or PreImport call reports its own running totals, so the
// figures are per repository when each call names one repository, as
// transfer/importserver's calls do.
type Progress struct {
	mu   sync.Mutex
	live map[string]dashboard.LiveTransfer
}

// NewProgress returns an empty Progress.
func NewProgress() *Progress { return &Progress{live: map[string]dashboard.LiveTransfer{}} }

// Record takes one progress event (a transfer.ImportOptions.Progress
// function).
func (p *Progress) Record(ev transfer.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.Kind == transfer.EventRepositoryDone {
		delete(p.live, ev.Repository)
		return
	}
	p.live[ev.Repository] = dashboard.LiveTransfer{Repository: ev.Repository, Pass: ev.Pass.String(),
		BlobsCopied: ev.BlobsCopied, BlobsSkipped: ev.BlobsSkipped + ev.BlobsShared, BytesCopied: ev.BytesCopied,
		BytesPerSecond: ev.BytesPerSecond, Elapsed: dashboard.Seconds(ev.Elapsed)}
}

// LiveTransfers implements dashboard.Transfers.
func (p *Progress) LiveTransfers() []dashboard.LiveTransfer {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]dashboard.LiveTransfer, 0, len(p.live))
	for _, t := range p.live {
		out = append(out, t)
	}
	return out
}

// timePtr is t in UTC, or nil for the zero time.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
