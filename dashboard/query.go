package dashboard

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ferryhq/ferry/bbm"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/internal/clip"
)

// params are a request's query parameters, checked strictly: a malformed
// query, an unknown or repeated parameter is a 400 that names it, so that
// a typo never silently shows another page than the one asked for.
type params map[string]string

// maxParamLen bounds any parameter value, in bytes.
const maxParamLen = 1024

func parseParams(raw string, known ...string) (params, error) {
	vs, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badRequest("malformed query: %v", err)
	}
	p := params{}
	for k, v := range vs {
		switch {
		case !slices.Contains(known, k):
			return nil, badRequest("unknown query parameter %q (this page takes %s)", clip.Marked(k, 64), strings.Join(known, ", "))
		case len(v) > 1:
			return nil, badRequest("query parameter %q given %d times", k, len(v))
		case len(v[0]) > maxParamLen:
			return nil, badRequest("query parameter %q is %d bytes long, more than %d", k, len(v[0]), maxParamLen)
		case !utf8.ValidString(v[0]):
			return nil, badRequest("query parameter %q is not valid UTF-8", k)
		}
		p[k] = v[0]
	}
	return p, nil
}

// limit reads the limit parameter: 1..MaxPageSize, def when absent.
func (p params) limit(def int) (int, error) {
	s, ok := p["limit"]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, badRequest("limit %q: want a number from 1 to %d", clip.Marked(s, 64), MaxPageSize)
	}
	return n, nil
}

// jobAfter reads a job page's after parameter: a job ID.
func (p params) jobAfter() (int64, error) {
	s, ok := p["after"]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest("after %q: want a job ID (a number)", clip.Marked(s, 64))
	}
	return n, nil
}

// jobStatus reads a job page's status filter.
func (p params) jobStatus() (bbm.JobStatus, error) {
	switch s := bbm.JobStatus(p["status"]); s {
	case "", bbm.JobRunning, bbm.JobFinished, bbm.JobFailed:
		return s, nil
	default:
		return "", badRequest("status %q: want %s, %s or %s", clip.Marked(string(s), 64), bbm.JobRunning, bbm.JobFinished, bbm.JobFailed)
	}
}

// state reads the imports page's state filter.
func (p params) state() (enqueuer.State, error) {
	s := enqueuer.State(p["state"])
	if s != "" && !s.Valid() {
		return "", badRequest("state %q: want one of %v", clip.Marked(string(s), 64), enqueuer.States)
	}
	return s, nil
}

// prefix reads the imports page's path prefix.
func (p params) prefix() (string, error) {
	s := p["prefix"]
	if len(s) > enqueuer.MaxPathLength {
		return "", badRequest("prefix is %d bytes long, more than a path (%d)", len(s), enqueuer.MaxPathLength)
	}
	return s, nil
}

// path reads a repository path parameter (path, or after for a page of
// repositories); required says whether it may be absent.
func (p params) path(name string, required bool) (string, error) {
	s, ok := p[name]
	if !ok || s == "" {
		if required {
			return "", badRequest("%s: a repository path is required", name)
		}
		return "", nil
	}
	if err := enqueuer.ValidatePath(s); err != nil {
		return "", badRequest("%s: %v", name, err)
	}
	return s, nil
}

// done reads the done parameter that an action's redirect adds: the kind
// of action that was carried out, shown as a notice.
func (p params) done() (ActionKind, error) {
	s, ok := p["done"]
	if !ok {
		return "", nil
	}
	if k := ActionKind(s); k.valid() {
		return k, nil
	}
	return "", badRequest("done %q: not an action", clip.Marked(s, 64))
}

// pageQuery builds the query string of a link, leaving out empty values.
func pageQuery(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// requestParams parses r's query, allowing known parameters plus done
// (the notice of an action), which must name an action.
func requestParams(r *http.Request, known ...string) (params, error) {
	p, err := parseParams(r.URL.RawQuery, append(known, "done")...)
	if err != nil {
		return nil, err
	}
	if _, err := p.done(); err != nil {
		return nil, err
	}
	return p, nil
}
