// Package gocloudblob adapts a gocloud.dev/blob bucket (fileblob, memblob,
// gcsblob, s3blob, azureblob, ...) to transfer.Bucket, the small interface
// package transfer reads and writes through:
//
//	b, err := blob.OpenBucket(ctx, "gs://registry-eu")
//	src := gocloudblob.New(b)
//	tr, err := transfer.New(src, dst, transfer.Options{})
//
// It is a separate package so that a host whose storage is not a gocloud
// bucket does not link gocloud.dev and the clients it pulls in (gRPC,
// OpenTelemetry, the Google API client): package transfer itself links
// none of them.
//
// Errors are translated to the interface's contract: gocloud's NotFound
// wraps transfer.ErrNotExist (a missing bucket fails List with it, so
// transfer reports a *transfer.BucketError naming the bucket), and
// transient errors (gocloud ResourceExhausted, DeadlineExceeded and
// Internal codes, *googleapi.Error statuses, gRPC Unavailable and friends)
// get an HTTPStatusCode method, which transfer.IsRetryable understands.
// The original error stays in the chain for errors.As.
//
// fileblob writes into a temporary file and renames it on Close. With its
// no_tmp_dir option the temporary file sits next to the key
// ("data.<n>.tmp"), where a crash leaves it; when this adapter writes a
// key there, it removes that key's temporary files older than
// Options.LeftoverAge (transfer.SweepLeftovers removes all of them).
//
// Unwrap returns the *blob.Bucket behind a transfer.Bucket (following
// wrappers such as faultblob's), which is how transfer/gcscopy reaches
// the GCS client of a gcsblob bucket.
package gocloudblob
