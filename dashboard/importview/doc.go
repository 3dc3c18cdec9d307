// Package importview feeds package dashboard from the registry side of
// imports: transfer/importserver's store (each repository's last import
// run and the notification outbox) and transfer.Importer's progress (the
// blob copies running in this process). It is a package of its own so that
// hosts that mount the dashboard without the import server do not link
// package transfer and its storage clients.
//
//	progress := importview.NewProgress()
//	im, _ := transfer.NewImporter(src, tr, sink, transfer.ImportOptions{Progress: progress.Record})
//	h, _ := dashboard.New(dashboard.Config{
//		Repositories: enqueuerStore,
//		Registry:     importview.Registry(importServerStore),
//		Transfers:    progress,
//	})
package importview
