package dashboard

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/internal/clip"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFS embed.FS

// templates holds one template set per page, each with the layout.
type templates struct {
	pages map[string]*template.Template
}

var funcs = template.FuncMap{
	"dur":      formatSeconds,
	"num":      formatNumber,
	"pct":      func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + "%" },
	"bytes":    func(n int64) string { return formatBytes(n) },
	"rate":     func(f float64) string { return formatInt(int64(math.Round(f))) },
	"when":     formatTime,
	"q":        pageQuery,
	"nameURL":  escapeName,
	"inflight": func(s enqueuer.State) bool { return s.InProgress() },
	"cancellable": func(s enqueuer.State) bool {
		_, err := enqueuer.Next(s, enqueuer.EventSkip)
		return err == nil
	},
	"itoa":  func(v any) string { return fmt.Sprint(v) },
	"list":  func(s ...string) []string { return s },
	"int64": func(f float64) int64 { return int64(math.Round(f)) },
	"statesArgs": func(f *frame, s any) statesArgs {
		if p, ok := s.(*ImportsSection); ok {
			s = *p
		}
		sec, _ := s.(ImportsSection)
		return statesArgs{Prefix: f.Prefix, Section: sec}
	},
	"act": func(f *frame, kind, target, label string) actionButton {
		return actionButton{Prefix: f.Prefix, CSRF: f.CSRF, Kind: kind, Target: target, Label: label}
	},
	"str":   func(v fmt.Stringer) string { return v.String() },
	"short": func(s string) string { return clip.Marked(s, shortText) },
}

func parseTemplates() (*templates, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard: parsing the layout: %w", err)
	}
	t := &templates{pages: map[string]*template.Template{}}
	for _, name := range []string{"overview", "migration", "imports", "repository", "error"} {
		c, err := layout.Clone()
		if err == nil {
			_, err = c.ParseFS(templateFiles, "templates/"+name+".html")
		}
		if err != nil {
			return nil, fmt.Errorf("dashboard: parsing template %s: %w", name, err)
		}
		t.pages[name] = c
	}
	return t, nil
}

// frame is what the layout needs besides the page's value.
type frame struct {
	Prefix  string
	Title   string
	Nav     string
	Refresh int // seconds; 0: off
	// Actions is true when Authorize is set; CSRF is the forms' token.
	Actions                   bool
	CSRF                      string
	Notice                    string
	HasMigrations, HasImports bool
	Page                      any
}

// shortText is how much of a reason or error message lists show; the
// repository's and migration's pages show all of it.
const shortText = 240

// actionButton is one action's form (template "action").
type actionButton struct {
	Prefix, CSRF, Kind, Target, Label string
}

// statesArgs is what template "states" needs.
type statesArgs struct {
	Prefix  string
	Section ImportsSection
}

// render writes the HTML page of v with status code.
func (h *handler) render(w http.ResponseWriter, r *http.Request, code int, v any) {
	f := &frame{Prefix: h.cfg.Prefix, Title: h.cfg.Title, Refresh: int(h.cfg.Refresh / time.Second),
		HasMigrations: h.cfg.Migrations != nil, HasImports: h.cfg.Repositories != nil, Page: v}
	var name string
	switch v.(type) {
	case *Overview:
		name, f.Nav = "overview", "overview"
	case *MigrationPage:
		name, f.Nav = "migration", "overview"
	case *ImportsPage:
		name, f.Nav = "imports", "imports"
	case *RepositoryPage:
		name, f.Nav = "repository", "imports"
	default:
		name, f.Refresh = "error", 0
	}
	if code == http.StatusOK {
		if q, err := requestParams(r, "path", "state", "prefix", "after", "limit", "status"); err == nil {
			if k, err := q.done(); err == nil && k != "" {
				f.Notice = notices[k]
			}
		}
		if h.cfg.Authorize != nil {
			f.Actions, f.CSRF = true, h.csrf.token(w, r)
		}
	}
	var buf bytes.Buffer
	if err := h.views.pages[name].ExecuteTemplate(&buf, "layout.html", f); err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "dashboard: rendering a page failed", "page", name, "error", err)
		http.Error(w, "dashboard: rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// staticFiles serves the style sheet and the refresh script.
func staticFiles() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded directory exists: a build error otherwise
	}
	return http.StripPrefix("/static/", http.FileServerFS(sub))
}

// formatSeconds prints a duration for people: "—" when unknown, else the
// two largest units ("3h12m", "4m05s", "12.3s").
func formatSeconds(s Seconds) string {
	d := time.Duration(s)
	switch {
	case d < 0:
		return "—"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// formatNumber prints an integer of any type with thousands separators.
func formatNumber(v any) string {
	switch n := v.(type) {
	case int:
		return formatInt(int64(n))
	case int64:
		return formatInt(n)
	case float64:
		return formatInt(int64(math.Round(n)))
	}
	return fmt.Sprint(v)
}

// formatInt prints n with thousands separators.
func formatInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// formatBytes prints a byte count in binary units.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// formatTime prints a time in UTC to the second, "—" for none.
func formatTime(t any) string {
	switch v := t.(type) {
	case time.Time:
		if v.IsZero() {
			return "—"
		}
		return v.UTC().Format("2006-01-02 15:04:05 UTC")
	case *time.Time:
		if v == nil {
			return "—"
		}
		return formatTime(*v)
	}
	return fmt.Sprint(t)
}
