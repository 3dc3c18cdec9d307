// Package importservertest holds test helpers for package importserver:
// Store, an in-memory importserver.Store; TestStore, the conformance suite
// that it and importserver.PostgresStore pass (and any other Store
// should); and Importer, a scriptable importserver.Importer that lets a
// test hold, fail or count imports.
package importservertest
