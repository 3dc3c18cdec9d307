// Package gcstest runs an in-process fake-gcs-server for tests of code that
// copies blobs between GCS buckets, with a storage client whose HTTP
// traffic is counted (so a test can prove that a server-side copy moved no
// blob bytes through the host). It lives apart from transfertest so that
// programs using transfertest's layout generator do not link a fake GCS
// server.
package gcstest
