package importserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/clip"
)

// apiPrefix is the import API's path; the Handler finds it anywhere in the
// request path, so the host may mount it under any prefix.
const apiPrefix = "/gitlab/v1/import/"

// StatusResponse is the body of GET (and of the other operations'
// answers): the repository's import as the protocol names it (status and
// detail, what enqueuer.HTTPRegistry reads), plus what the server knows of
// its last run.
type StatusResponse struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	// Type, Run and Owner identify the last run (absent for "native").
	Type            Type       `json:"type,omitempty"`
	Run             int64      `json:"run,omitempty"`
	Owner           string     `json:"owner,omitempty"`
	CancelRequested bool       `json:"cancel_requested,omitempty"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	HeartbeatAt     *time.Time `json:"heartbeat_at,omitempty"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	Counts
	// LastError is the error of a failed run.
	LastError string `json:"last_error,omitempty"`
	// Progress is how far the import has got (the units of its plan done:
	// blob transfers and tag writes), set while it is in progress, runs in the process
	// that answers and its plan is known. A run of another instance
	// sharing the Store, one whose Importer does not report progress (see
	// Config.Importer) and one still planning have none. It lives in
	// memory only.
	Progress *Progress `json:"progress,omitempty"`
	// Errors is set when the answer is a refusal (4xx).
	Errors []APIError `json:"errors,omitempty"`
}

// APIError is one entry of an OCI distribution error body: a code such as
// NAME_UNKNOWN or IMPORT_IN_PROGRESS, a message, and optional detail.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// statusResponse is the answer describing imp, with its progress if this
// process runs it.
func (s *Server) statusResponse(imp Import) StatusResponse {
	at := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	r := StatusResponse{Name: name(imp.Path), Path: imp.Path, Status: imp.Status, Detail: imp.Detail,
		Type: imp.Type, Run: imp.Run, Owner: imp.Owner, CancelRequested: imp.CancelRequested,
		StartedAt: at(imp.StartedAt), HeartbeatAt: at(imp.HeartbeatAt), FinishedAt: at(imp.FinishedAt), Counts: imp.Counts}
	if imp.Status.Result() == Failed {
		r.LastError = imp.Detail
	}
	if r.Detail == "" && imp.Status.InProgress() {
		r.Detail = noun(imp.Type) + " in progress"
	}
	r.Progress = s.progressOf(imp)
	return r
}

func nativeResponse(path string) StatusResponse {
	return StatusResponse{Name: name(path), Path: path, Status: StatusNative, Detail: "repository is native: nothing to import"}
}

// Handler returns the import API:
//
//	PUT    <prefix>/gitlab/v1/import/<path>/?import_type=pre|final
//	GET    <prefix>/gitlab/v1/import/<path>/
//	DELETE <prefix>/gitlab/v1/import/<path>/[?force=true]
//
// Every request is first authorized (Config.Authorize; 401 or 403), before
// its path, query or body are read. A start answers 202 when the import
// was started (it runs in the background and its outcome is notified), 200
// when there is nothing to do (the final import completed, or the
// repository is native), 404 for a repository that does not exist, 409
// while an import of it runs, 425 for a final import while its pre-import
// runs, 424 for a final import whose last run is not a completed
// pre-import, 429 at
// Config.MaxConcurrentImports, and 503 before Start, during Shutdown or
// when the store is unavailable. GET answers 200 with a StatusResponse
// (whose status is empty for a repository never imported) or 404 for a
// repository that does not exist. DELETE asks a running import to stop (202; its outcome,
// import_canceled or pre_import_canceled, is notified when it stopped);
// with force=true it records the cancellation at once, whether or not the
// import still runs anywhere (for imports stuck after a crash); 400 when
// nothing runs. Malformed paths, import types and force values answer 400,
// other methods 405, bodies over Config.MaxBodyBytes 413; none of them
// changes anything. Answers are JSON: a StatusResponse, or an OCI error
// body {"errors": [{"code", "message", "detail"}]}.
//
// Paths with "." or ".." segments, "//" or escaped characters are
// refused; note that an http.ServeMux in front redirects some of them to
// their cleaned form before the handler sees them.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveAPI) }

// answer is what a request got, for the observer.
type answer struct {
	code int
	err  error
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	ctx := s.obs.RequestStart(r.Context(), RequestStartEvent{Method: r.Method, URLPath: r.URL.Path})
	if ctx != r.Context() {
		r = r.WithContext(ctx)
	}
	ev := RequestEvent{Op: OpInvalid}
	a := s.serve(w, r, &ev)
	ev.Code, ev.Err, ev.Duration = a.code, a.err, time.Since(began)
	s.obs.RequestEnd(ctx, ev)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, ev *RequestEvent) answer {
	if err := s.cfg.Authorize(r); err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ferry-importserver"`)
			return refuse(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required", err)
		}
		return refuse(w, http.StatusForbidden, "DENIED", "requested access to the resource is denied", err)
	}
	switch r.Method {
	case http.MethodPut:
		ev.Op = OpStart
	case http.MethodGet:
		ev.Op = OpStatus
	case http.MethodDelete:
		ev.Op = OpCancel
	default:
		w.Header().Set("Allow", "GET, PUT, DELETE")
		return refuse(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed", fmt.Errorf("method %s", clip.Marked(r.Method, 16)))
	}
	path, a := repositoryPath(w, r)
	if a.code != 0 {
		ev.Op = OpInvalid
		return a
	}
	ev.Path = path
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return refuse(w, http.StatusBadRequest, "INVALID_QUERY_PARAMETER_VALUE", "malformed query", err)
	}
	if a := s.readBody(w, r); a.code != 0 {
		return a
	}
	ctx := r.Context()
	switch ev.Op {
	case OpStart:
		vals := query["import_type"]
		if len(vals) > 1 {
			return refuse(w, http.StatusBadRequest, "INVALID_QUERY_PARAMETER_VALUE", "import_type given more than once", ErrInvalidType)
		}
		typ, err := ParseType(strings.Join(vals, ""))
		if err != nil {
			return refuse(w, http.StatusBadRequest, "INVALID_QUERY_PARAMETER_VALUE", trimPkg(err), err)
		}
		ev.Type = typ
		return s.start(ctx, w, path, typ)
	case OpStatus:
		return s.status(ctx, w, path)
	}
	force := false
	switch v := query["force"]; {
	case len(v) == 0 || (len(v) == 1 && v[0] == "false"):
	case len(v) == 1 && v[0] == "true":
		force = true
	default:
		return refuse(w, http.StatusBadRequest, "INVALID_QUERY_PARAMETER_VALUE", `force must be "true" or "false"`,
			fmt.Errorf("force=%q", clip.Marked(strings.Join(v, ","), 32)))
	}
	return s.cancel(ctx, w, path, force)
}

// repositoryPath finds and checks <path> in .../gitlab/v1/import/<path>/.
func repositoryPath(w http.ResponseWriter, r *http.Request) (string, answer) {
	p := r.URL.Path
	i := strings.Index(p, apiPrefix)
	if i < 0 {
		return "", refuse(w, http.StatusNotFound, "NOT_FOUND", "no such endpoint", fmt.Errorf("path %q", clip.Marked(p, 128)))
	}
	if r.URL.RawPath != "" {
		return "", refuse(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name: escaped characters", ErrInvalidPath)
	}
	path := strings.TrimSuffix(p[i+len(apiPrefix):], "/")
	if err := ValidatePath(path); err != nil {
		return "", refuse(w, http.StatusBadRequest, "NAME_INVALID", trimPkg(err), err)
	}
	return path, answer{}
}

// readBody refuses bodies over MaxBodyBytes; a small one is ignored.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) answer {
	limit := s.cfg.MaxBodyBytes
	tooLarge := func() answer {
		return refuse(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", fmt.Sprintf("request body larger than %d bytes", limit),
			errors.New("request body too large"))
	}
	if r.ContentLength > limit {
		return tooLarge()
	}
	_, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge()
	case err != nil:
		return refuse(w, http.StatusBadRequest, "BODY_INVALID", "reading the request body failed", err)
	}
	return answer{}
}

// start handles PUT.
func (s *Server) start(ctx context.Context, w http.ResponseWriter, path string, typ Type) answer {
	s.mu.Lock()
	if s.phase != phaseRunning {
		ph := s.phase
		s.mu.Unlock()
		w.Header().Set("Retry-After", "10")
		return refuse(w, http.StatusServiceUnavailable, "UNAVAILABLE", "import server "+ph.String(), ErrNotRunning)
	}
	s.starting.Add(1)
	s.mu.Unlock()
	defer s.starting.Done()

	// A repository imported before starts in one store call; only the
	// first start of a repository checks that it exists and is not native
	// (a first pre-import while it starts: startFirst).
	req := BeginRequest{Path: path, Type: typ, Owner: s.cfg.Instance, MaxRunning: s.cfg.MaxConcurrentImports,
		AllowWithoutPreImport: s.cfg.AllowFinalWithoutPreImport, RequireRecord: true}
	imp, err := s.cfg.Store.Begin(ctx, req)
	if errors.Is(err, ErrNotFound) {
		if a, done := s.native(ctx, w, path); done {
			return a
		}
		req.RequireRecord = false
		early := typ == PreImport && !s.cfg.CheckBeforeFirstStart // start while checking
		if early {
			imp, err = s.cfg.Store.Begin(ctx, req)
			if err == nil {
				return s.startFirst(ctx, w, imp)
			}
		}
		if a, done := s.missing(ctx, w, path); done {
			return a
		}
		// An early start refused (429, 409) stands: answer it. Any other
		// failure of it is begun again now that the repository is known.
		if !early || !errors.As(err, new(*RefusedError)) {
			imp, err = s.cfg.Store.Begin(ctx, req)
		}
	}
	var ref *RefusedError
	switch {
	case errors.As(err, &ref):
		return s.refused(ctx, w, typ, ref)
	case errors.Is(err, ErrStateChanged):
		return refuse(w, http.StatusConflict, "IMPORT_IN_PROGRESS", "the repository's import changed concurrently", err)
	case err != nil:
		return s.unavailable(ctx, w, path, err)
	}
	s.launch(imp, nil)
	return respond(w, http.StatusAccepted, s.statusResponse(imp), nil)
}

// startFirst runs a repository's first pre-import, just recorded, while
// it checks that the repository exists: the check lists the source
// (LayoutRepositories), and would otherwise hold up every repository's
// first start by one storage round trip. The run plans meanwhile (reads
// only) and waits for the check before its first write (see
// activeRun.gate). A repository not found, or whose check fails or
// panics, gets the answer it would have got (404, 503) once its run is
// abandoned: stopped, its record deleted (Store.Abandon), nothing written,
// nothing notified. A process killed during the check leaves the run to
// the stale sweep, like any run it was running (failed, and notified).
func (s *Server) startFirst(ctx context.Context, w http.ResponseWriter, imp Import) answer {
	check := newFirstCheck()
	run := s.launch(imp, check)
	abandon := func() {
		s.stopActive(run, stopAbandoned)
		check.settle(false)
		select { // answer once the record is gone: a retry must not find it
		case <-check.done:
		case <-ctx.Done():
		}
	}
	settled := false
	defer func() { // when the host's check panics: the run must not wait for ever
		if !settled {
			abandon()
		}
	}()
	exists, err := s.cfg.Repositories.Exists(ctx, imp.Path)
	settled = true
	if err != nil || !exists {
		abandon()
		// abandonErr is set once check.done is closed, which abandon
		// waited for unless ctx ended first.
		if ctx.Err() == nil && check.abandonErr != nil {
			// The record stays (the stale sweep ends it, notified): say so
			// rather than 404.
			return s.unavailable(ctx, w, imp.Path, fmt.Errorf("abandoning the start of %s: %w", imp.Path, check.abandonErr))
		}
		a, _ := s.answerExists(ctx, w, imp.Path, exists, err)
		return a
	}
	check.settle(true)
	return respond(w, http.StatusAccepted, s.statusResponse(imp), nil)
}

// unrecorded answers a start or status of a repository without an import
// record when it is native (200) or unknown (404); done is false when it
// exists and is not native.
func (s *Server) unrecorded(ctx context.Context, w http.ResponseWriter, path string) (answer, bool) {
	if a, done := s.native(ctx, w, path); done {
		return a, true
	}
	return s.missing(ctx, w, path)
}

// native answers a repository that Config.Native says is native (200);
// done is false when it is not (or there is no such check).
func (s *Server) native(ctx context.Context, w http.ResponseWriter, path string) (answer, bool) {
	if s.cfg.Native == nil {
		return answer{}, false
	}
	native, err := s.cfg.Native(ctx, path)
	if err != nil {
		return s.unavailable(ctx, w, path, err), true
	}
	if native {
		return respond(w, http.StatusOK, nativeResponse(path), nil), true
	}
	return answer{}, false
}

// missing answers a repository that does not exist (404); done is false
// when it exists.
func (s *Server) missing(ctx context.Context, w http.ResponseWriter, path string) (answer, bool) {
	exists, err := s.cfg.Repositories.Exists(ctx, path)
	return s.answerExists(ctx, w, path, exists, err)
}

// answerExists is missing's answer to Repositories.Exists's.
func (s *Server) answerExists(ctx context.Context, w http.ResponseWriter, path string, exists bool, err error) (answer, bool) {
	if err != nil {
		return s.unavailable(ctx, w, path, err), true
	}
	if !exists {
		return refuse(w, http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry", fmt.Errorf("repository %s not found", path)), true
	}
	return answer{}, false
}

// refused answers a start the store refused.
func (s *Server) refused(ctx context.Context, w http.ResponseWriter, typ Type, ref *RefusedError) answer {
	body := s.statusResponse(ref.Current)
	if ref.Current.Status == "" {
		body = StatusResponse{Name: name(ref.Current.Path), Path: ref.Current.Path}
	}
	var code int
	var e APIError
	switch {
	case errors.Is(ref, ErrAlreadyImported):
		return respond(w, http.StatusOK, body, ref)
	case errors.Is(ref, ErrPreImportInProgress):
		code, e = http.StatusTooEarly, APIError{Code: "PRE_IMPORT_IN_PROGRESS", Message: "the repository's pre-import is still in progress"}
	case errors.Is(ref, ErrImportInProgress):
		code, e = http.StatusConflict, APIError{Code: "IMPORT_IN_PROGRESS", Message: "the repository is already being imported"}
	case errors.Is(ref, ErrPreImportRequired):
		code, e = http.StatusFailedDependency, APIError{Code: "PRE_IMPORT_FAILED", Message: "the repository has no completed pre-import"}
	case errors.Is(ref, ErrTooManyImports):
		code, e = http.StatusTooManyRequests, APIError{Code: "IMPORT_RATE_LIMIT",
			Message: fmt.Sprintf("the registry is already running %d imports (at most %d)", ref.Running, s.cfg.MaxConcurrentImports)}
	default:
		return s.unavailable(ctx, w, ref.Current.Path, ref)
	}
	e.Detail = map[string]string{"repository": ref.Current.Path, "import_type": string(typ)}
	body.Errors = []APIError{e}
	s.log.InfoContext(ctx, "importserver: start refused", "repository", ref.Current.Path, "import_type", string(typ),
		"code", code, "reason", ref.Reason)
	return respond(w, code, body, ref)
}

// status handles GET.
func (s *Server) status(ctx context.Context, w http.ResponseWriter, path string) answer {
	imp, err := s.cfg.Store.Get(ctx, path)
	switch {
	case errors.Is(err, ErrNotFound):
		if a, done := s.unrecorded(ctx, w, path); done {
			return a
		}
		// It exists and was never imported: no status yet (the
		// coordinator's StatusUnknown), which is not "not found": a
		// coordinator reconciling would skip a repository it reads as
		// missing.
		return respond(w, http.StatusOK, StatusResponse{Name: name(path), Path: path, Detail: "no import recorded"}, nil)
	case err != nil:
		return s.unavailable(ctx, w, path, err)
	}
	return respond(w, http.StatusOK, s.statusResponse(imp), nil)
}

// cancel handles DELETE.
func (s *Server) cancel(ctx context.Context, w http.ResponseWriter, path string, force bool) answer {
	var imp Import
	var err error
	if force {
		imp, err = s.cfg.Store.ForceCancel(ctx, path, "canceled by request (forced)")
	} else {
		imp, err = s.cfg.Store.RequestCancel(ctx, path)
	}
	var ref *RefusedError
	switch {
	case errors.Is(err, ErrNotFound):
		exists, eerr := s.cfg.Repositories.Exists(ctx, path)
		if eerr != nil {
			return s.unavailable(ctx, w, path, eerr)
		}
		if !exists {
			return refuse(w, http.StatusNotFound, "NAME_UNKNOWN", "repository name not known to registry", err)
		}
		return refuse(w, http.StatusBadRequest, "IMPORT_NOT_IN_PROGRESS", "no import recorded for the repository", err)
	case errors.As(err, &ref):
		body := s.statusResponse(ref.Current)
		body.Errors = []APIError{{Code: "IMPORT_NOT_IN_PROGRESS", Message: "no import of the repository is in progress",
			Detail: map[string]string{"repository": path, "status": string(ref.Current.Status)}}}
		return respond(w, http.StatusBadRequest, body, err)
	case err != nil:
		return s.unavailable(ctx, w, path, err)
	}
	if force {
		// Recorded and notified already: whatever still runs stops silently.
		s.stopRun(imp.Ref(), stopLost)
		s.poke()
	} else {
		s.stopRun(imp.Ref(), stopRequested)
	}
	s.log.InfoContext(ctx, "importserver: cancellation", "repository", path, "run", imp.Run, "forced", force, "status", imp.Status)
	return respond(w, http.StatusAccepted, s.statusResponse(imp), nil)
}

// unavailable answers 503 when the store (or a host hook) failed.
func (s *Server) unavailable(ctx context.Context, w http.ResponseWriter, path string, err error) answer {
	s.log.ErrorContext(ctx, "importserver: request failed", "repository", path, "error", err)
	w.Header().Set("Retry-After", "10")
	return refuse(w, http.StatusServiceUnavailable, "UNAVAILABLE", "import state unavailable", err)
}

func respond(w http.ResponseWriter, code int, body any, err error) answer {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
	return answer{code: code, err: err}
}

func writeErrors(w http.ResponseWriter, code int, errs ...APIError) {
	respond(w, code, map[string][]APIError{"errors": errs}, nil)
}

func refuse(w http.ResponseWriter, code int, errCode, msg string, err error) answer {
	writeErrors(w, code, APIError{Code: errCode, Message: msg})
	return answer{code: code, err: err}
}

// trimPkg drops the package prefix of an error message shown to clients.
func trimPkg(err error) string { return strings.TrimPrefix(err.Error(), "importserver: ") }
