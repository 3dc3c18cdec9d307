package importview

import (
	"context"
	"errors"

	"github.com/ferryhq/ferry/dashboard"
	"github.com/ferryhq/ferry/transfer/importserver"
)

// Store is what Registry reads of an import server's store:
// importserver.Store (*importserver.PostgresStore,
// importservertest.Store) implements it.
type Store interface {
	Get(ctx context.Context, path string) (importserver.Import, error)
	OutboxStats(ctx context.Context) (importserver.OutboxStats, error)
}

// Registry shows s's records on the dashboard (dashboard.Config.Registry).
func Registry(s Store) dashboard.Registry { return registry{s} }

type registry struct{ s Store }

// RegistryImport implements dashboard.Registry.
func (r registry) RegistryImport(ctx context.Context, path string) (dashboard.RegistryImport, bool, error) {
	imp, err := r.s.Get(ctx, path)
	if errors.Is(err, importserver.ErrNotFound) {
		return dashboard.RegistryImport{}, false, nil
	}
	if err != nil {
		return dashboard.RegistryImport{}, false, err
	}
	return View(imp), true, nil
}

// Outbox implements dashboard.Registry.
func (r registry) Outbox(ctx context.Context) (dashboard.Outbox, error) {
	st, err := r.s.OutboxStats(ctx)
	if err != nil {
		return dashboard.Outbox{}, err
	}
	return dashboard.Outbox{Pending: st.Pending, OldestPending: dashboard.Seconds(st.OldestPending), Failed: st.Failed}, nil
}

// View is imp as the dashboard shows it.
func View(imp importserver.Import) dashboard.RegistryImport {
	return dashboard.RegistryImport{Type: string(imp.Type), Status: string(imp.Status), Detail: imp.Detail, Run: imp.Run,
		Owner: imp.Owner, CancelRequested: imp.CancelRequested, BlobsCopied: imp.Counts.BlobsCopied,
		BytesCopied: imp.Counts.BytesCopied, StartedAt: timePtr(imp.StartedAt), HeartbeatAt: timePtr(imp.HeartbeatAt),
		FinishedAt: timePtr(imp.FinishedAt)}
}
