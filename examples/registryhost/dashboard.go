package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/ferryhq/ferry/dashboard"
	"github.com/ferryhq/ferry/dashboard/importview"
	"github.com/ferryhq/ferry/enqueuer"
	"github.com/ferryhq/ferry/transfer/importserver"
)

// dashboardPrefix is where the host mounts Ferry's status page.
const dashboardPrefix = "/ferry"

// adminCookie carries the admin token that allows the dashboard's actions.
const adminCookie = "registryhost_admin"

// mountDashboard serves Ferry's dashboard on the host's own objects under
// dashboardPrefix. Anyone who can reach the port may look; actions need
// the admin cookie, which GET /ferry-login?token=<AdminToken> sets.
func (h *host) mountDashboard(mux *http.ServeMux, enq *enqueuer.Enqueuer, progress *importview.Progress) error {
	registry, err := importserver.NewPostgresStore(h.db, importserver.PostgresOptions{})
	if err != nil {
		return err
	}
	dash, err := dashboard.New(dashboard.Config{
		Prefix:         dashboardPrefix,
		Title:          "registryhost",
		Migrations:     h.admin,
		Repositories:   h.store,
		Imports:        enq,
		Forecast:       enq,
		Capacity:       func(context.Context) int { return h.cfg.Capacity },
		Registry:       importview.Registry(registry),
		Transfers:      progress,
		Leases:         []dashboard.LeaseKey{{Title: "enqueuer", Key: enqueuer.DefaultLeaseKey, Locker: h.locker}},
		Authorize:      h.authorize,
		Refresh:        h.cfg.DashboardRefresh,
		ForecastMaxAge: h.cfg.DashboardForecastMaxAge,
		Logger:         h.logger,
	})
	if err != nil {
		return err
	}
	mux.Handle(dashboardPrefix+"/", dash)
	mux.HandleFunc("GET /ferry-login", h.login)
	return nil
}

var errNotAdmin = errors.New("log in first: open /ferry-login?token=<the admin token registryhost printed>")

// authorize allows an action when the request carries the admin cookie.
func (h *host) authorize(r *http.Request, _ dashboard.Action) error {
	c, err := r.Cookie(adminCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(h.cfg.AdminToken)) != 1 {
		return errNotAdmin
	}
	return nil
}

// login sets the admin cookie for the right token and goes to the
// dashboard.
func (h *host) login(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("token")), []byte(h.cfg.AdminToken)) != 1 {
		http.Error(w, "registryhost: wrong admin token", http.StatusForbidden)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: h.cfg.AdminToken, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, dashboardPrefix+"/", http.StatusSeeOther)
}
