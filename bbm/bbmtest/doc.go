// Package bbmtest helps test code that uses package bbm: Store is an
// in-memory bbm.Store and Catalog an in-memory bbm.Catalog, so workers run
// without Postgres, and TestStore is the conformance suite that every
// bbm.Store (PostgresStore included) must pass.
//
//	store := bbmtest.NewStore(bbmtest.StoreOptions{})
//	catalog := bbmtest.NewCatalog(bbmtest.Table{Name: "items", Columns: map[string]string{"id": "bigint"}, MinKey: 1, MaxKey: 1000})
//	w := bbm.NewSyncWorker(nil, bbm.Options{Store: store, Catalog: catalog})
package bbmtest
