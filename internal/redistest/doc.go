// Package redistest gives tests a throwaway redis-server: started from the
// machine's redis-server binary (Debian package redis-server) in a temp
// dir, reachable only on a unix socket there, with an append-only file
// (fsynced every second, and flushed by the graceful shutdown that Restart
// does) so that data survives Restart. It is stopped when
// the test ends, or by SIGTERM if the test binary dies, and a later run
// removes whatever a crashed run left behind.
//
// When redis-server is missing, New fails the test under CI=true and skips
// it, with the reason, elsewhere.
//
//	srv := redistest.New(t)
//	client := redis.NewClient(srv.Options())
package redistest
