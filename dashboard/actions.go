package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/internal/clip"
	"github.com/ferryhq/ferry/lease"
)

// ActionKind is what an action does.
type ActionKind string

// The actions. Each is a POST to {Prefix}/actions with the form fields
// action (the kind), target and csrf.
const (
	// PauseMigration, ResumeMigration and RetryMigration call bbm's
	// Admin.Pause, Resume and RetryFailed; Target is the migration name.
	PauseMigration  ActionKind = "pause_migration"
	ResumeMigration ActionKind = "resume_migration"
	RetryMigration  ActionKind = "retry_migration"
	// RetryImport gives a skipped repository a new start
	// (Enqueuer.ResetSkipped); CancelImport ends a repository's migration
	// for good (Enqueuer.ForceCancel). Target is the repository path.
	RetryImport  ActionKind = "retry_import"
	CancelImport ActionKind = "cancel_import"
	// BreakLease ends the lease on one of Config.Leases' keys, whoever
	// holds it (lease.Breaker); Target is the key.
	BreakLease ActionKind = "break_lease"
)

// ActionKinds lists every action.
var ActionKinds = []ActionKind{PauseMigration, ResumeMigration, RetryMigration, RetryImport, CancelImport, BreakLease}

func (k ActionKind) valid() bool {
	for _, a := range ActionKinds {
		if k == a {
			return true
		}
	}
	return false
}

// Action is one action an operator asked for, as Config.Authorize sees it.
type Action struct {
	Kind ActionKind
	// Target is the migration name, repository path or lease key.
	Target string
}

// String describes the action for logs and messages.
func (a Action) String() string { return fmt.Sprintf("%s %q", a.Kind, a.Target) }

// maxFormBytes bounds an action's body: three short fields.
const maxFormBytes = 8 << 10

// serveAction carries out one action. Every check comes before anything
// changes, and a refused action changes nothing: actions off (403), a
// malformed form (400), a missing or forged CSRF token (403), an unknown
// action or a malformed target (400), a section the host did not wire
// (404), the host's Authorize (403), an unknown target (404), a target in
// the wrong state (409). Success redirects (303) to the target's page.
func (h *handler) serveAction(w http.ResponseWriter, r *http.Request) {
	asJSON := strings.Contains(r.Header.Get("Accept"), "application/json")
	a, err := h.checkAction(w, r)
	if err == nil {
		err = h.do(r.Context(), a)
	}
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			h.cfg.Logger.WarnContext(r.Context(), "dashboard: action refused", "action", string(a.Kind), "target", a.Target,
				"status", he.code, "error", he.msg)
		}
		h.fail(w, r, err, asJSON)
		return
	}
	h.cfg.Logger.InfoContext(r.Context(), "dashboard: action done", "action", string(a.Kind), "target", a.Target)
	if asJSON {
		writeJSON(w, http.StatusOK, map[string]string{"done": string(a.Kind), "target": a.Target})
		return
	}
	http.Redirect(w, r, h.afterAction(a), http.StatusSeeOther)
}

// checkAction reads and checks the action, up to and including Authorize.
func (h *handler) checkAction(w http.ResponseWriter, r *http.Request) (Action, error) {
	if h.cfg.Authorize == nil {
		return Action{}, &httpError{code: http.StatusForbidden,
			msg: "actions are off: this dashboard is read-only (the host sets Config.Authorize to allow actions)"}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return Action{}, &httpError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("action form larger than %d bytes", maxFormBytes)}
		}
		return Action{}, badRequest("malformed action form: %v", err)
	}
	if len(r.URL.RawQuery) > 0 {
		return Action{}, badRequest("an action takes no query parameters")
	}
	field := func(name string) (string, error) {
		v := r.PostForm[name]
		if len(v) != 1 {
			return "", badRequest("action form field %q given %d times, want once", name, len(v))
		}
		return v[0], nil
	}
	token, err := field(csrfField)
	if err != nil || !h.csrf.valid(r, token) {
		return Action{}, &httpError{code: http.StatusForbidden,
			msg: "invalid or missing CSRF token: reload the page and try again"}
	}
	kind, err := field("action")
	if err != nil {
		return Action{}, err
	}
	target, err := field("target")
	if err != nil {
		return Action{}, err
	}
	a := Action{Kind: ActionKind(kind), Target: target}
	if !a.Kind.valid() {
		return Action{}, badRequest("unknown action %q (want one of %v)", clip.Marked(kind, 64), ActionKinds)
	}
	if err := h.checkTarget(a); err != nil {
		return a, err
	}
	if err := h.cfg.Authorize(r, a); err != nil {
		return a, &httpError{code: http.StatusForbidden, msg: fmt.Sprintf("not allowed to %s: %v", a, err)}
	}
	return a, nil
}

// checkTarget checks the target's form and that the host wired what the
// action needs.
func (h *handler) checkTarget(a Action) error {
	switch a.Kind {
	case PauseMigration, ResumeMigration, RetryMigration:
		if h.cfg.Migrations == nil {
			return &httpError{code: http.StatusNotFound, msg: "this dashboard shows no migrations"}
		}
		if a.Target == "" || len(a.Target) > 200 {
			return badRequest("migration name of %d bytes: want 1-200", len(a.Target))
		}
	case RetryImport, CancelImport:
		if h.cfg.Imports == nil {
			return &httpError{code: http.StatusNotFound, msg: "import actions are off (the host did not set Config.Imports)"}
		}
		if err := enqueuer.ValidatePath(a.Target); err != nil {
			return badRequest("%v", err)
		}
	case BreakLease:
		l, ok := h.leaseKey(a.Target)
		if !ok {
			return &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("no lease %q on this dashboard", clip.Marked(a.Target, 64))}
		}
		if _, ok := l.Locker.(lease.Breaker); !ok {
			return badRequest("the lease %q cannot be broken: its Locker is not a lease.Breaker", a.Target)
		}
	}
	return nil
}

func (h *handler) leaseKey(key string) (LeaseKey, bool) {
	for _, l := range h.cfg.Leases {
		if l.Key == key {
			return l, true
		}
	}
	return LeaseKey{}, false
}

// do carries out a checked action.
func (h *handler) do(ctx context.Context, a Action) error {
	var err error
	switch a.Kind {
	case PauseMigration:
		_, err = h.cfg.Migrations.Pause(ctx, a.Target)
	case ResumeMigration:
		_, err = h.cfg.Migrations.Resume(ctx, a.Target)
	case RetryMigration:
		_, err = h.cfg.Migrations.RetryFailed(ctx, a.Target)
	case RetryImport:
		var n int
		n, err = h.cfg.Imports.ResetSkipped(ctx, enqueuer.ResetOptions{Paths: []string{a.Target}})
		if err == nil && n == 0 {
			return h.notSkipped(ctx, a.Target)
		}
	case CancelImport:
		_, err = h.cfg.Imports.ForceCancel(ctx, a.Target)
	case BreakLease:
		l, _ := h.leaseKey(a.Target)
		_, err = lease.Break(ctx, l.Locker, l.Key)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bbm.ErrMigrationNotFound), errors.Is(err, enqueuer.ErrNotFound):
		return &httpError{code: http.StatusNotFound, msg: err.Error()}
	case errors.Is(err, bbm.ErrInvalidTransition), errors.Is(err, enqueuer.ErrInvalidTransition),
		errors.Is(err, enqueuer.ErrStateChanged):
		return &httpError{code: http.StatusConflict, msg: fmt.Sprintf("cannot %s: %v", a, err)}
	}
	return fmt.Errorf("%s: %w", a, err)
}

// notSkipped explains a retry that reset nothing.
func (h *handler) notSkipped(ctx context.Context, path string) error {
	r, err := h.cfg.Repositories.Get(ctx, path)
	if err != nil {
		if errors.Is(err, enqueuer.ErrNotFound) {
			return &httpError{code: http.StatusNotFound, msg: err.Error()}
		}
		return err
	}
	return &httpError{code: http.StatusConflict, msg: fmt.Sprintf(
		"cannot retry %s: it is %s; only skipped repositories are retried by hand (the enqueuer retries aborted ones)", r.Path, r.State)}
}

// afterAction is the page to go to after a, with a notice.
func (h *handler) afterAction(a Action) string {
	p := h.cfg.Prefix
	switch a.Kind {
	case PauseMigration, ResumeMigration, RetryMigration:
		return p + "/migrations/" + escapeName(a.Target) + pageQuery("done", string(a.Kind))
	case RetryImport, CancelImport:
		return p + "/repository" + pageQuery("path", a.Target, "done", string(a.Kind))
	}
	return p + "/" + pageQuery("done", string(a.Kind))
}

// escapeName escapes a migration name for a path (names may hold '/',
// which stays a separator: the route takes the rest of the path).
func escapeName(name string) string {
	parts := strings.Split(name, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// notices are the messages a page shows after an action.
var notices = map[ActionKind]string{
	PauseMigration:  "Paused: workers start no new job of this migration (a running job finishes).",
	ResumeMigration: "Resumed: workers pick this migration up again.",
	RetryMigration:  "Retried: the failed jobs run again, first.",
	RetryImport:     "Retried: the repository waits for a new start.",
	CancelImport:    "Cancelled: the repository's migration was ended (skipped, migration_forced_canceled).",
	BreakLease:      "Lease broken: the next acquisition takes it; a live holder loses it at its next renewal.",
}
