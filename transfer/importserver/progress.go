package importserver

import (
	"sync"
	"time"

	"github.com/ferryhq/ferry/transfer"
)

// Progress is how far a running import has got: Done of Total units of
// its plan, counted since the plan was known. The units are its blob
// transfers and, in a final import, its tag writes: the bulk of each
// phase after its plan. Manifests, written between the two, are not
// counted (their writes cost far less than a blob's transfer, and
// counting them at the blobs' rate overestimated a large pre-import's
// rest by a quarter). It is the JSON object
// "progress" of a StatusResponse, which enqueuer.HTTPRegistry decodes into
// an enqueuer.ImportProgress (the coordinator's forecast reads the rate
// Done over the time since Since).
type Progress struct {
	// Done is how many of the planned units are done so far: blobs
	// transferred (or found already present) and tags written.
	Done int64 `json:"done"`
	// Total is how many the run's plan has (transfer.Planned Blobs +
	// Tags).
	Total int64 `json:"total"`
	// Since is when the plan was known and counting began.
	Since time.Time `json:"since"`
	// At is when this answer was made, by the same clock as Since: the
	// rate is Done over At-Since whatever the reader's clock says.
	At time.Time `json:"at"`
}

// progressRecorder counts the progress of one run from the events of the
// transfer.Importer pass it runs (see transfer.WithProgress). The Importer
// calls observe one call at a time; GET reads snapshot concurrently.
type progressRecorder struct {
	path string

	mu sync.Mutex
	p  Progress // p.Since is set once the plan is known
}

func newProgressRecorder(path string) *progressRecorder { return &progressRecorder{path: path} }

// observe takes the pass's events about the run's repository: its plan
// sets the total (and restarts the count), each blob and tag done counts
// one.
func (r *progressRecorder) observe(p transfer.Progress) {
	if p.Repository != r.path {
		return
	}
	switch p.Kind {
	case transfer.EventRepositoryPlanned:
		r.mu.Lock()
		r.p = Progress{Total: int64(p.Planned.BlobsAndTags()), Since: time.Now().UTC()}
		r.mu.Unlock()
	case transfer.EventBlobDone, transfer.EventTagDone:
		r.mu.Lock()
		r.p.Done++
		r.mu.Unlock()
	}
}

// snapshot returns the progress so far, or nil before the plan is known.
func (r *progressRecorder) snapshot() *Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p.Since.IsZero() {
		return nil
	}
	p := r.p
	p.At = time.Now().UTC()
	return &p
}

// progressOf returns the progress of imp when it is in progress, this
// process runs it (the same run) and its plan is known; nil otherwise.
func (s *Server) progressOf(imp Import) *Progress {
	if !imp.Status.InProgress() {
		return nil
	}
	s.mu.Lock()
	r := s.runLocked(imp.Ref())
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.progress.snapshot()
}
