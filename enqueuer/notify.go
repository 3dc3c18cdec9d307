package enqueuer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ferryhq/ferry/storage"
)

// Notification statuses the registry sends to the Handler.
const (
	NotifyPreImportComplete = "pre_import_complete"
	NotifyPreImportFailed   = "pre_import_failed"
	NotifyImportComplete    = "import_complete"
	NotifyImportFailed      = "import_failed"
	// NotifyPreImportCanceled and NotifyImportCanceled end an import the
	// registry stopped on request (its import API's DELETE, or a write
	// during a pre-import): the repository is aborted like a failure, and
	// the enqueuer retries it later. When the enqueuer stopped it itself
	// (the stale guard aborted or skipped it), they are duplicates.
	NotifyPreImportCanceled = "pre_import_canceled"
	NotifyImportCanceled    = "import_canceled"
)

// DefaultMaxBodyBytes is HandlerOptions.MaxBodyBytes' default.
const DefaultMaxBodyBytes = 16 << 10

// notification is what a status means for the state machine: the state it
// expects, the event it applies, and the states in which it was already
// applied (a duplicate delivery).
type notification struct {
	from    State
	event   Event
	applied []State
}

var notifications = map[string]notification{
	NotifyPreImportComplete: {StatePreImporting, EventFinishPreImport, []State{StatePreImportDone, StateImporting, StateImportDone}},
	NotifyPreImportFailed:   {StatePreImporting, EventAbort, []State{StateImportAborted}},
	NotifyImportComplete:    {StateImporting, EventFinishImport, []State{StateImportDone}},
	NotifyImportFailed:      {StateImporting, EventAbort, []State{StateImportAborted}},
	NotifyPreImportCanceled: {StatePreImporting, EventAbort, []State{StateImportAborted, StateImportSkipped}},
	NotifyImportCanceled:    {StateImporting, EventAbort, []State{StateImportAborted, StateImportSkipped}},
}

// HandlerOptions configures NewHandler. Store and a secret (Secret or
// Secrets) are required.
type HandlerOptions struct {
	// Store holds the repositories. Every call gets a context from
	// storage.UsePrimary.
	Store Store
	// Secret is the shared secret the registry sends as
	// "Authorization: Bearer <Secret>".
	Secret string
	// Secrets are more secrets accepted as well, for a rotation without
	// downtime: accept the old and the new one, switch the registry to
	// the new one, then drop the old one (Handler.SetSecrets changes them
	// while the Handler serves). Secret or Secrets is required.
	Secrets []string
	// OnChange, when set, is called after a notification changed a
	// repository and the answer was sent, in the request's goroutine and
	// with a context that is not cancelled with the request. It is the
	// place to trigger the enqueuer again (the capacity just grew, or a
	// final import is due); keep it short, e.g. start a goroutine or
	// enqueue a job. Duplicate notifications do not call it.
	OnChange func(ctx context.Context, r Repository)
	// MaxBodyBytes bounds the request body; larger ones get 413. Default
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives one line per notification. Default: slog.Default().
	Logger *slog.Logger
	// Clock is the time recorded for state changes. Default time.Now.
	Clock func() time.Time
	// Observer is told of every request (Observer.NotifyStart and
	// NotifyEnd, with the outcome), for metrics and tracing. Default: none
	// (an empty ObserverFuncs).
	Observer Observer
}

// Handler is the registry's notification endpoint:
//
//	PUT <prefix>/repositories/<path>/migration/status
//	Authorization: Bearer <secret>
//	{"status": "pre_import_complete", "reason": "..."}
//
// status is one of pre_import_complete, pre_import_failed, import_complete,
// import_failed, pre_import_canceled and import_canceled; reason (or the
// registry's "detail") is optional and recorded as the abort reason of a
// failure or cancellation. The answers are 200 when the
// state changed or the notification had already been applied (a duplicate
// delivery), 400 for a malformed request or with "wrong migration state
// (<state>)" when the repository is in a state the notification does not
// fit, 401 without credentials, 403 with wrong ones, 404 for an unknown
// repository, 405 for another method and 413 for a body over the limit.
// Error bodies are JSON {"message": "..."}.
//
// The handler finds <path> itself, so it may be mounted under any prefix
// that does not contain "/repositories/". Note that an http.ServeMux in
// front of it redirects paths with "." or ".." segments or "//" to their
// cleaned form before the handler sees them; mounted directly (or under
// http.StripPrefix), the handler refuses such paths with 400.
//
// Every read and write goes to the primary: the import may have been
// started a moment ago by another process, and a replica that has not
// replayed that yet would report the old state.
type Handler struct {
	opts    HandlerOptions
	secrets atomic.Pointer[[][sha256.Size]byte] // hashes of the accepted secrets
}

// NewHandler returns a Handler.
func NewHandler(opts HandlerOptions) (*Handler, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("%w: HandlerOptions.Store is required", ErrConfig)
	}
	secrets := opts.Secrets
	if opts.Secret != "" {
		secrets = append([]string{opts.Secret}, secrets...)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Observer == nil {
		opts.Observer = ObserverFuncs{}
	}
	h := &Handler{opts: opts}
	if err := h.SetSecrets(secrets...); err != nil {
		return nil, fmt.Errorf("%w: HandlerOptions.Secret or Secrets: %w", ErrConfig, err)
	}
	return h, nil
}

// SetSecrets replaces the accepted secrets at once, while the Handler
// serves: a request is checked against the set in place when it arrives.
// At least one is required, none may be empty. To rotate without
// downtime: SetSecrets(old, new), switch the registry to new, then
// SetSecrets(new).
func (h *Handler) SetSecrets(secrets ...string) error {
	if len(secrets) == 0 {
		return fmt.Errorf("%w: at least one secret is required", ErrConfig)
	}
	hashes := make([][sha256.Size]byte, len(secrets))
	for i, s := range secrets {
		if s == "" {
			return fmt.Errorf("%w: secret %d is empty", ErrConfig, i+1)
		}
		hashes[i] = sha256.Sum256([]byte(s))
	}
	h.secrets.Store(&hashes)
	return nil
}

// statusRequest is the body of a notification.
type statusRequest struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
	Detail string `json:"detail"` // the registry's name for the reason
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	began := time.Now()
	ctx := storage.UsePrimary(req.Context())
	sctx := h.opts.Observer.NotifyStart(ctx, NotifyStartEvent{Method: req.Method, URLPath: req.URL.Path})
	ev, repo := h.serve(sctx, w, req)
	ev.Duration = time.Since(began)
	h.opts.Observer.NotifyEnd(sctx, ev)
	if ev.Outcome == NotificationApplied && h.opts.OnChange != nil {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		h.opts.OnChange(context.WithoutCancel(ctx), repo)
	}
}

// serve answers the request and says how; repo is the repository after an
// applied change.
func (h *Handler) serve(ctx context.Context, w http.ResponseWriter, req *http.Request) (NotifyEvent, Repository) {
	answer := func(ev NotifyEvent, code int, msg string) (NotifyEvent, Repository) {
		writeMessage(w, code, msg)
		ev.Code = code
		return ev, Repository{}
	}
	ev := NotifyEvent{Outcome: NotificationBadRequest}
	if req.Method != http.MethodPut {
		w.Header().Set("Allow", http.MethodPut)
		return answer(ev, http.StatusMethodNotAllowed, "method not allowed")
	}
	if code, msg := h.authorize(req); code != 0 {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ferry-enqueuer"`)
		}
		ev.Outcome = NotificationUnauthorized
		return answer(ev, code, msg)
	}
	path, code, msg := repositoryPath(req.URL.Path)
	if code != 0 {
		if code == http.StatusNotFound {
			ev.Outcome = NotificationNotFound
		}
		return answer(ev, code, msg)
	}
	ev.Path = path
	body, code, msg := h.readBody(w, req)
	ev.Status = body.Status
	if code != 0 {
		return answer(ev, code, msg)
	}
	n, ok := notifications[body.Status]
	if !ok {
		return answer(ev, http.StatusBadRequest, fmt.Sprintf("unknown status %q", body.Status))
	}
	reason := body.Reason
	if reason == "" {
		reason = body.Detail
	}
	reason = truncateReason(reason)

	repo, changed, err := h.apply(ctx, path, body.Status, n, reason)
	var wrong *wrongStateError
	switch {
	case errors.Is(err, ErrNotFound):
		ev.Outcome = NotificationNotFound
		return answer(ev, http.StatusNotFound, "repository not found")
	case errors.As(err, &wrong):
		h.opts.Logger.WarnContext(ctx, "enqueuer: notification does not fit the migration state",
			append([]any{"status", body.Status}, repoAttrs(wrong.repo)...)...)
		ev.Outcome = NotificationWrongState
		return answer(ev, http.StatusBadRequest, fmt.Sprintf("wrong migration state (%s)", wrong.repo.State))
	case err != nil:
		h.opts.Logger.ErrorContext(ctx, "enqueuer: notification failed",
			"status", body.Status, "container_repository_path", path, "error", err)
		ev.Outcome, ev.Err = NotificationError, err
		return answer(ev, http.StatusInternalServerError, "internal error")
	}
	h.opts.Logger.InfoContext(ctx, "enqueuer: notification",
		append([]any{"status", body.Status, "duplicate", !changed}, repoAttrs(repo)...)...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]any{"migration_state": repo.State, "changed": changed})
	ev.Code, ev.Outcome = http.StatusOK, NotificationDuplicate
	if changed {
		ev.Outcome = NotificationApplied
	}
	return ev, repo
}

// wrongStateError is a notification that does not fit the state.
type wrongStateError struct{ repo Repository }

func (e *wrongStateError) Error() string {
	return fmt.Sprintf("wrong migration state (%s)", e.repo.State)
}

// apply reads the repository and applies the notification by
// compare-and-set, reading again when another change won the race.
func (h *Handler) apply(ctx context.Context, path, status string, n notification, reason string) (Repository, bool, error) {
	const attempts = 5
	var repo Repository
	for range attempts {
		var err error
		repo, err = h.opts.Store.Get(ctx, path)
		if err != nil {
			return Repository{}, false, err
		}
		for _, s := range n.applied {
			if repo.State == s {
				return repo, false, nil
			}
		}
		if repo.State != n.from {
			return repo, false, &wrongStateError{repo: repo}
		}
		after, err := h.opts.Store.Transition(ctx, Change{ID: repo.ID, From: repo.State, Event: n.event, Reason: reason, At: h.opts.Clock()})
		if errors.Is(err, ErrStateChanged) {
			continue
		}
		if err != nil {
			return Repository{}, false, err
		}
		return after, true, nil
	}
	return repo, false, fmt.Errorf("enqueuer: %s of %s: %w %d times in a row", status, path, ErrStateChanged, attempts)
}

// authorize checks the bearer secret in constant time. It returns 0 when
// the request may go on.
func (h *Handler) authorize(req *http.Request) (int, string) {
	auth := req.Header.Get("Authorization")
	if auth == "" {
		return http.StatusUnauthorized, "missing credentials"
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return http.StatusUnauthorized, "credentials must be a bearer token"
	}
	// Hashing first makes the comparison independent of the lengths too;
	// every accepted secret is compared, so the time does not tell which
	// one matched.
	given := sha256.Sum256([]byte(token))
	match := 0
	for _, want := range *h.secrets.Load() {
		match |= subtle.ConstantTimeCompare(given[:], want[:])
	}
	if match != 1 {
		return http.StatusForbidden, "wrong credentials"
	}
	return 0, ""
}

// repositoryPath extracts and checks <path> from
// .../repositories/<path>/migration/status.
func repositoryPath(urlPath string) (string, int, string) {
	const marker, suffix = "/repositories/", "/migration/status"
	i := strings.Index(urlPath, marker)
	if i < 0 || !strings.HasSuffix(urlPath, suffix) {
		return "", http.StatusNotFound, "no such endpoint"
	}
	start, end := i+len(marker), len(urlPath)-len(suffix)
	if start > end { // ".../repositories/migration/status"
		return "", http.StatusBadRequest, "invalid repository path: empty"
	}
	path := urlPath[start:end]
	if err := ValidatePath(path); err != nil {
		return "", http.StatusBadRequest, strings.TrimPrefix(err.Error(), "enqueuer: ")
	}
	return path, 0, ""
}

// readBody decodes one JSON object of at most MaxBodyBytes.
func (h *Handler) readBody(w http.ResponseWriter, req *http.Request) (statusRequest, int, string) {
	var body statusRequest
	raw, err := io.ReadAll(http.MaxBytesReader(w, req.Body, h.opts.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return body, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", h.opts.MaxBodyBytes)
	case err != nil:
		return body, http.StatusBadRequest, "reading the body failed"
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&body); err != nil {
		return body, http.StatusBadRequest, "malformed JSON body"
	}
	if dec.More() {
		return body, http.StatusBadRequest, "malformed JSON body: more than one value"
	}
	if body.Status == "" {
		return body, http.StatusBadRequest, `missing "status"`
	}
	return body, 0, ""
}

func writeMessage(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
