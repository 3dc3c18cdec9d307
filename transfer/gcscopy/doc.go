// Package gcscopy lets a transfer.Transferer copy blobs between two Google
// Cloud Storage buckets inside the service (the rewrite API), so that no
// blob bytes are written by the host. It is a separate package so that
// hosts which do not use GCS do not link the GCS client, gRPC and their
// dependencies: only a host that imports gcscopy does.
//
//	src, dst := gocloudblob.New(srcBlob), gocloudblob.New(dstBlob) // two gcsblob buckets
//	copier, err := gcscopy.New(src, dst)
//	tr, err := transfer.New(src, dst, transfer.Options{ServerSide: copier})
//
// New finds each bucket's GCS client and name through gocloudblob.Unwrap,
// so the buckets may also be wrapped (faultblob, or a host's own wrapper
// with an Unwrap() transfer.Bucket method). GCS client errors reach the
// Transferer's retry policy with their HTTP status.
//
// By default (transfer.VerifySource) the Transferer still reads each
// source object once, pinned to the generation it checked, and hashes it
// against its digest before the service copies exactly that generation;
// transfer.TrustChecksums skips the read. The copy is checked against the
// source's size and CRC32C, and resumed with its rewrite token after a
// failure.
//
// A 404 is told apart: a missing destination or source bucket is a
// *transfer.BucketError naming "gs://<bucket>", a source object replaced
// by a new generation during the copy is transfer.ErrSourceChanged
// (retried with the new generation), and only a source object that is
// really gone is transfer.ErrMissingBlob.
package gcscopy
