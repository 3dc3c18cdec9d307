package importserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// Refusal is a write WriteGuard refused, for GuardConfig.Refuse.
type Refusal struct {
	// Repository is the path written to.
	Repository string
	// Status is the import's status; empty when it could not be read
	// (Err says why).
	Status Status
	// RetryAfter is GuardConfig.RetryAfter.
	RetryAfter time.Duration
	// Err says why, e.g. "repository is read-only: final import in
	// progress".
	Err error
}

// ErrReadOnly is the Err of a Refusal during a final import.
var ErrReadOnly = errors.New("importserver: repository is read-only while its final import runs")

// writeRoute matches the /v2/ API's write endpoints: manifests (and tags,
// which are manifest references), blobs and blob uploads. The name is
// everything between "/v2/" and the endpoint, so names containing
// "manifests" or "blobs" components still parse.
var writeRoute = regexp.MustCompile(`/v2/(.+)/(?:manifests/[^/]+|blobs/uploads/[^/]*|blobs/[^/]+)$`)

// DistributionWrite is GuardConfig.Classify's default: PUT, POST, PATCH
// and DELETE requests to /v2/<name>/manifests/<reference>,
// /v2/<name>/blobs/<digest> and /v2/<name>/blobs/uploads/... write to
// <name>. The /v2/ part may follow a prefix.
func DistributionWrite(r *http.Request) (string, bool) {
	switch r.Method {
	case http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete:
	default:
		return "", false
	}
	m := writeRoute.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// RefuseUnavailable is GuardConfig.Refuse's default: 503 Service
// Unavailable with Retry-After and an OCI distribution error body
// (code UNAVAILABLE) that names the repository and its import status.
func RefuseUnavailable(w http.ResponseWriter, _ *http.Request, ref Refusal) {
	if ref.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((ref.RetryAfter+time.Second-1)/time.Second)))
	}
	writeErrors(w, http.StatusServiceUnavailable, APIError{Code: "UNAVAILABLE", Message: ref.Err.Error(),
		Detail: map[string]string{"repository": ref.Repository, "import_status": string(ref.Status)}})
}

// WriteGuard is middleware for the registry's own /v2/ API. Reads pass
// untouched. A write (GuardConfig.Classify) to a repository whose final
// import runs is refused (GuardConfig.Refuse; by default 503 with
// Retry-After): the repository is read-only until the import ends. A
// write during a pre-import cancels the pre-import (the coordinator will
// start it again) and then goes through, or just goes through with
// GuardConfig.AllowPreImportWrites. When the import state cannot be read
// the write is refused too: letting it through could put it half-way into
// a final import.
//
// A final import does not start copying until the writes this server let
// through before it started have finished (at most
// GuardConfig.DrainTimeout), so none of them lands half-way. Writes served
// by other instances are not waited for: put WriteGuard in front of every
// instance's /v2/ API, and prefer sending the import API to the instances
// that serve writes.
func (s *Server) WriteGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, write := s.cfg.Guard.Classify(r)
		if !write || ValidatePath(repo) != nil {
			next.ServeHTTP(w, r)
			return
		}
		// Counted before the state is read: a final import that starts
		// from now on either is seen below or waits for this write.
		release := s.enterWrite(repo)
		defer release()
		ctx := r.Context()
		imp, err := s.cfg.Store.Get(ctx, repo)
		ev := GuardEvent{Path: repo, Method: r.Method, Status: imp.Status}
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			ev.Action, ev.Err = GuardUnavailable, err
			s.log.WarnContext(ctx, "importserver: write refused: import state unavailable", "repository", repo, "error", err)
			s.obs.WriteGuarded(ctx, ev)
			s.cfg.Guard.Refuse(w, r, Refusal{Repository: repo, RetryAfter: s.cfg.Guard.RetryAfter,
				Err: fmt.Errorf("importserver: repository import state unavailable; try again later")})
			return
		case imp.Status == StatusImportInProgress:
			ev.Action, ev.Err = GuardRefused, ErrReadOnly
			s.obs.WriteGuarded(ctx, ev)
			s.cfg.Guard.Refuse(w, r, Refusal{Repository: repo, Status: imp.Status, RetryAfter: s.cfg.Guard.RetryAfter, Err: ErrReadOnly})
			return
		case imp.Status == StatusPreImportInProgress && s.cfg.Guard.AllowPreImportWrites:
			ev.Action = GuardAllowedDuringPreImport
			s.obs.WriteGuarded(ctx, ev)
		case imp.Status == StatusPreImportInProgress:
			ev.Action, ev.Err = GuardCanceledPreImport, s.cancelForWrite(ctx, imp)
			s.obs.WriteGuarded(ctx, ev)
		}
		next.ServeHTTP(w, r)
	})
}

// cancelForWrite asks the running pre-import imp to stop because its
// repository is written to.
func (s *Server) cancelForWrite(ctx context.Context, imp Import) error {
	cur, err := s.cfg.Store.RequestCancel(ctx, imp.Path)
	var ref *RefusedError
	switch {
	case errors.As(err, &ref) && errors.Is(err, ErrNotInProgress):
		return nil // it ended meanwhile
	case err != nil:
		s.log.WarnContext(ctx, "importserver: could not cancel a pre-import for a write", "repository", imp.Path, "error", err)
		return err
	}
	s.stopRun(cur.Ref(), stopWrite)
	s.log.InfoContext(ctx, "importserver: pre-import canceled by a write", "repository", imp.Path, "run", cur.Run, "owner", cur.Owner)
	return nil
}

// writesInFlight counts the writes to one repository that WriteGuard let
// through and that have not finished; idle is closed when none is left.
type writesInFlight struct {
	n    int
	idle chan struct{}
}

// enterWrite counts a write to repo until the returned func is called.
func (s *Server) enterWrite(repo string) func() {
	s.mu.Lock()
	w := s.writes[repo]
	if w == nil {
		w = &writesInFlight{idle: make(chan struct{})}
		s.writes[repo] = w
	}
	w.n++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if w.n--; w.n == 0 {
			close(w.idle)
			delete(s.writes, repo)
		}
	}
}

// drain waits until the writes to repo in flight have finished, for at
// most GuardConfig.DrainTimeout.
func (s *Server) drain(ctx context.Context, repo string) error {
	s.mu.Lock()
	w := s.writes[repo]
	s.mu.Unlock()
	if w == nil {
		return nil
	}
	t := time.NewTimer(s.cfg.Guard.DrainTimeout)
	defer t.Stop()
	select {
	case <-w.idle:
		return nil
	case <-t.C:
		return fmt.Errorf("writes to the repository that started before the final import were still running after %s", s.cfg.Guard.DrainTimeout)
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
