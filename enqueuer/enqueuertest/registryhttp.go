package enqueuertest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/ferryhq/ferry/enqueuer"
)

// RegistryHandler serves r over the registry's import API, the one
// enqueuer.HTTPRegistry speaks, so that tests and examples can run the HTTP
// client against a registry with scripted behaviour:
//
//	PUT    /gitlab/v1/import/<path>/?import_type=pre|final
//	GET    /gitlab/v1/import/<path>/
//	DELETE /gitlab/v1/import/<path>/
//
// A failure scripted with a *enqueuer.RegistryError answers with its
// StatusCode; other scripted errors answer 500.
func RegistryHandler(r *Registry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		const prefix = "/gitlab/v1/import/"
		p := req.URL.Path
		if !strings.HasPrefix(p, prefix) || !strings.HasSuffix(p, "/") {
			http.NotFound(w, req)
			return
		}
		path := strings.TrimSuffix(strings.TrimPrefix(p, prefix), "/")
		ctx := req.Context()
		var err error
		switch req.Method {
		case http.MethodPut:
			switch req.URL.Query().Get("import_type") {
			case "pre":
				err = r.StartPreImport(ctx, path)
			case "final":
				err = r.StartImport(ctx, path)
			default:
				http.Error(w, `{"message":"import_type must be pre or final"}`, http.StatusBadRequest)
				return
			}
			if err == nil {
				w.WriteHeader(http.StatusAccepted)
				return
			}
		case http.MethodGet:
			var st enqueuer.ImportStatus
			if st, err = r.ImportStatus(ctx, path); err == nil {
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(st)
				return
			}
		case http.MethodDelete:
			if err = r.CancelImport(ctx, path); err == nil {
				w.WriteHeader(http.StatusAccepted)
				return
			}
		default:
			w.Header().Set("Allow", "GET, PUT, DELETE")
			http.Error(w, `{"message":"method not allowed"}`, http.StatusMethodNotAllowed)
			return
		}
		code := http.StatusInternalServerError
		var re *enqueuer.RegistryError
		switch {
		case errors.As(err, &re) && re.StatusCode != 0:
			code = re.StatusCode
		case errors.Is(err, enqueuer.ErrInvalidPath):
			code = http.StatusBadRequest
		}
		if code == http.StatusOK {
			w.WriteHeader(code) // "already native": a success without an import
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": err.Error()})
	})
}
