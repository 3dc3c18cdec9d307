package importserver_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/importserver"
)

type spanKey struct{}

func spanOf(ctx context.Context) string {
	s, _ := ctx.Value(spanKey{}).(string)
	return s
}

// markingImporter records the span of the context each import runs under.
type markingImporter struct {
	mu    sync.Mutex
	under []string
}

func (m *markingImporter) PreImport(ctx context.Context, _ ...string) (*transfer.Report, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.under = append(m.under, spanOf(ctx))
	return &transfer.Report{Pass: transfer.PreImport}, nil
}

func (m *markingImporter) Import(ctx context.Context, repos ...string) (*transfer.Report, error) {
	return m.PreImport(ctx, repos...)
}

// The Importer runs under the context ImportStart returned, and every End
// hook gets its own Start's context back, through a MultiObserver.
func TestObserverContextsNest(t *testing.T) {
	var mu sync.Mutex
	ends := map[string]int{}
	mark := func(name string) func(ctx context.Context) context.Context {
		return func(ctx context.Context) context.Context { return context.WithValue(ctx, spanKey{}, name) }
	}
	end := func(ctx context.Context) {
		mu.Lock()
		defer mu.Unlock()
		ends[spanOf(ctx)]++
	}
	obs := importserver.ObserverFuncs{
		OnRequestStart: func(ctx context.Context, e importserver.RequestStartEvent) context.Context {
			return mark("request " + e.Method)(ctx)
		},
		OnRequestEnd: func(ctx context.Context, _ importserver.RequestEvent) { end(ctx) },
		OnImportStart: func(ctx context.Context, e importserver.ImportStartEvent) context.Context {
			return mark("import " + e.Import.Path)(ctx)
		},
		OnImportEnd: func(ctx context.Context, _ importserver.ImportEvent) { end(ctx) },
		OnDeliveryStart: func(ctx context.Context, e importserver.DeliveryStartEvent) context.Context {
			return mark("delivery " + e.Notification.Path)(ctx)
		},
		OnDeliveryEnd: func(ctx context.Context, _ importserver.DeliveryEvent) { end(ctx) },
	}
	im := &markingImporter{}
	f := newFixture(t, func(c *importserver.Config) {
		c.Importer = im
		c.Observer = importserver.MultiObserver(obs, importserver.ObserverFuncs{})
	})
	code, _, _ := f.call(t, http.MethodPut, "a", "import_type=pre")
	require.Equal(t, http.StatusAccepted, code)
	f.coord.waitFor(t, "a", importserver.StatusPreImportComplete)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ends["delivery a"] == 1
	}, 5*time.Second, 5*time.Millisecond)

	im.mu.Lock()
	require.Equal(t, []string{"import a"}, im.under)
	im.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]int{"request PUT": 1, "import a": 1, "delivery a": 1}, ends)
}
