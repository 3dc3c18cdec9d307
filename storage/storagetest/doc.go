// Package storagetest gives tests (and examples) a throwaway PostgreSQL server.
//
// A test binary shares one server: it is started on first use from the
// machine's PostgreSQL binaries (initdb into a temp dir, a unix socket in
// that dir, fsync off, trust auth; as the postgres OS user when running as
// root) and stopped by Main when the binary ends, or by SIGQUIT if the
// binary dies. Every test gets its own database, copied from a template
// that already has Ferry's schema, and dropped when the test ends.
//
// With FERRY_TEST_DATABASE_URL set, databases are made on that server
// instead. When no server can be had, tests fail under CI=true and are
// skipped with the reason elsewhere.
//
//	func TestMain(m *testing.M) { storagetest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		pool := storagetest.Pool(t) // fresh, migrated database
//		...
//	}
package storagetest
