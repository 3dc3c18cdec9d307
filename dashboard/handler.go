package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// handler serves the pages, the JSON endpoints, the static files and the
// actions under the inner paths (Prefix already removed).
type handler struct {
	cfg     Config
	views   *templates
	csrf    csrf
	origins *http.CrossOriginProtection
	inner   http.Handler
	// forecasts keeps the last Config.Forecast answer.
	forecasts forecasts
}

// New returns the dashboard's handler for cfg. Mount it at cfg.Prefix:
//
//	h, err := dashboard.New(dashboard.Config{Prefix: "/ferry", Migrations: worker.Admin(), ...})
//	mux.Handle("/ferry/", h)
//
// A bad Config is an error wrapping ErrConfig.
func New(cfg Config) (http.Handler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	views, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	c, err := newCSRF(cfg.CSRFKey, cfg.Prefix+"/")
	if err != nil {
		return nil, err
	}
	h := &handler{cfg: cfg, views: views, csrf: c, origins: http.NewCrossOriginProtection(),
		forecasts: forecasts{maxAge: cfg.ForecastMaxAge}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.page(h.overview))
	mux.HandleFunc("GET /migrations/{name...}", h.page(h.migrationPage))
	mux.HandleFunc("GET /imports", h.page(h.importsPage))
	mux.HandleFunc("GET /repository", h.page(h.repositoryPage))
	mux.HandleFunc("GET /api/overview", h.api(h.overview))
	mux.HandleFunc("GET /api/migrations/{name...}", h.api(h.migrationPage))
	mux.HandleFunc("GET /api/imports", h.api(h.importsPage))
	mux.HandleFunc("GET /api/repository", h.api(h.repositoryPage))
	mux.Handle("GET /static/", staticFiles())
	mux.Handle("POST /actions", h.origins.Handler(http.HandlerFunc(h.serveAction)))
	mux.HandleFunc("/actions", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, &httpError{code: http.StatusMethodNotAllowed, msg: "actions are POSTs of the forms on the pages"}, false)
	})
	mux.HandleFunc("/", h.notFound)
	h.inner = mux
	return h, nil
}

// ServeHTTP implements http.Handler: it removes Prefix and sets the
// headers every answer carries.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// No inline script or style anywhere: the policy forbids them, which
	// takes the sting out of any escaping mistake. Framing is refused so
	// that buttons cannot be clickjacked.
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	prefix := h.cfg.Prefix
	if prefix == "" {
		h.inner.ServeHTTP(w, r)
		return
	}
	switch {
	case r.URL.Path == prefix:
		http.Redirect(w, r, prefix+"/", http.StatusMovedPermanently)
	case strings.HasPrefix(r.URL.Path, prefix+"/"):
		http.StripPrefix(prefix, h.inner).ServeHTTP(w, r)
	default:
		h.notFound(w, r)
	}
}

// httpError is an error with the status to answer it with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// loader builds one page's value from the request.
type loader func(ctx context.Context, r *http.Request) (any, error)

// page serves a loader's value as HTML.
func (h *handler) page(load loader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := load(r.Context(), r)
		if err != nil {
			h.fail(w, r, err, false)
			return
		}
		h.render(w, r, http.StatusOK, v)
	}
}

// api serves a loader's value as JSON.
func (h *handler) api(load loader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := load(r.Context(), r)
		if err != nil {
			h.fail(w, r, err, true)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// fail answers err: its own status for an httpError, 503 for anything
// else (a store that cannot be read), as JSON or as an error page.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error, asJSON bool) {
	code := http.StatusServiceUnavailable
	var he *httpError
	if errors.As(err, &he) {
		code = he.code
	} else {
		h.cfg.Logger.WarnContext(r.Context(), "dashboard: a source failed", "path", r.URL.Path, "error", err)
	}
	if asJSON || strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, code, ErrorBody{Error: err.Error()})
		return
	}
	h.render(w, r, code, &errorPage{Title: h.cfg.Title, Code: code, Status: http.StatusText(code), Message: err.Error()})
}

func (h *handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.fail(w, r, &httpError{code: http.StatusNotFound, msg: "no such page: " + r.URL.Path}, false)
}

// errorPage is the page of a 4xx or 5xx answer.
type errorPage struct {
	Title   string
	Code    int
	Status  string
	Message string
}
