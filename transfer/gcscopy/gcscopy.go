package gcscopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"
	"google.golang.org/api/googleapi"

	"github.com/ferryhq/ferry/internal/cloudstatus"
	"github.com/ferryhq/ferry/transfer"
	"github.com/ferryhq/ferry/transfer/gocloudblob"
)

// Copier copies objects between two GCS buckets with the rewrite API. It
// implements transfer.ServerSideCopier and is safe for concurrent use.
type Copier struct {
	src, dst         *storage.BucketHandle
	srcName, dstName string
}

var _ transfer.ServerSideCopier = (*Copier)(nil)

// New returns a Copier between two gcsblob buckets passed as
// transfer.Buckets: gocloudblob.New of a gcsblob bucket, or a wrapper of
// one whose Unwrap method leads to it (see gocloudblob.Unwrap). The error
// says which bucket is not a GCS bucket.
func New(src, dst transfer.Bucket) (*Copier, error) {
	sc, sn, err := gcsOf(src)
	if err != nil {
		return nil, fmt.Errorf("gcscopy.New: source: %w", err)
	}
	dc, dn, err := gcsOf(dst)
	if err != nil {
		return nil, fmt.Errorf("gcscopy.New: destination: %w", err)
	}
	return NewFromClients(sc, sn, dc, dn), nil
}

// NewFromClients returns a Copier from bucket srcBucket (read with
// srcClient) to dstBucket (written with dstClient).
func NewFromClients(srcClient *storage.Client, srcBucket string, dstClient *storage.Client, dstBucket string) *Copier {
	return &Copier{
		src: srcClient.Bucket(srcBucket), dst: dstClient.Bucket(dstBucket),
		srcName: srcBucket, dstName: dstBucket,
	}
}

// noRetry leaves retries to the Transferer's RetryPolicy.
var noRetry = storage.WithPolicy(storage.RetryNever)

func (c *Copier) srcObject(key string) *storage.ObjectHandle {
	return c.src.Object(key).Retryer(noRetry)
}

func (c *Copier) dstObject(key string) *storage.ObjectHandle {
	return c.dst.Object(key).Retryer(noRetry)
}

// Source implements transfer.ServerSideCopier.
func (c *Copier) Source(ctx context.Context, key string) (_ transfer.ObjectVersion, err error) {
	defer classify(&err)
	a, err := c.srcObject(key).Attrs(ctx)
	if err != nil {
		if isNotFound(err) {
			return transfer.ObjectVersion{}, c.sourceGone(ctx, err)
		}
		return transfer.ObjectVersion{}, err
	}
	return version(a), nil
}

// Destination implements transfer.ServerSideCopier.
func (c *Copier) Destination(ctx context.Context, key string) (_ transfer.ObjectVersion, _ bool, err error) {
	defer classify(&err)
	a, err := c.dstObject(key).Attrs(ctx)
	switch {
	case errors.Is(err, storage.ErrObjectNotExist):
		return transfer.ObjectVersion{}, false, nil
	case isNotFound(err):
		if berr := c.bucketMissing(ctx, c.dst, c.dstName, err); berr != nil {
			return transfer.ObjectVersion{}, false, berr
		}
		return transfer.ObjectVersion{}, false, nil
	case err != nil:
		return transfer.ObjectVersion{}, false, err
	}
	return version(a), true, nil
}

// ReadSource implements transfer.ServerSideCopier.
func (c *Copier) ReadSource(ctx context.Context, key string, v transfer.ObjectVersion) (_ io.ReadCloser, err error) {
	defer classify(&err)
	gen, err := generation(v)
	if err != nil {
		return nil, err
	}
	r, err := c.srcObject(key).Generation(gen).NewReader(ctx)
	if isNotFound(err) {
		return nil, c.classify404(ctx, key, gen, err)
	}
	if err != nil {
		return nil, err
	}
	return reader{r: r}, nil
}

// Copy implements transfer.ServerSideCopier.
func (c *Copier) Copy(ctx context.Context, key string, v transfer.ObjectVersion, metadata map[string]string, progress *transfer.CopyProgress) (_ transfer.ObjectVersion, err error) {
	defer classify(&err)
	gen, err := generation(v)
	if err != nil {
		return transfer.ObjectVersion{}, err
	}
	cp := c.dstObject(key).CopierFrom(c.srcObject(key).Generation(gen))
	cp.ContentType = "application/octet-stream"
	cp.Metadata = metadata
	cp.RewriteToken = progress.Token
	cp.ProgressFunc = func(done, _ uint64) { progress.BytesDone = int64(done) }
	a, err := cp.Run(ctx)
	progress.Token = cp.RewriteToken
	if err != nil {
		if isNotFound(err) {
			return transfer.ObjectVersion{}, c.classify404(ctx, key, gen, err)
		}
		return transfer.ObjectVersion{}, err
	}
	return version(a), nil
}

// RemoveDestination implements transfer.ServerSideCopier.
func (c *Copier) RemoveDestination(ctx context.Context, key string, v transfer.ObjectVersion) (err error) {
	defer classify(&err)
	gen, err := generation(v)
	if err != nil {
		return err
	}
	err = c.dstObject(key).Generation(gen).Delete(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil
	}
	return err
}

// classify404 explains a 404 from a read or copy of source generation gen:
// a missing bucket (destination first: a copy needs it), a source object
// replaced by a newer generation (retried), or a source object that is
// gone.
func (c *Copier) classify404(ctx context.Context, key string, gen int64, cause error) error {
	if berr := c.bucketMissing(ctx, c.dst, c.dstName, cause); berr != nil {
		return berr
	}
	a, err := c.srcObject(key).Attrs(ctx)
	switch {
	case err == nil && a.Generation != gen:
		return fmt.Errorf("%w: gs://%s/%s generation %d replaced by %d", transfer.ErrSourceChanged, c.srcName, key, gen, a.Generation)
	case err == nil:
		return cause // the source is there: the 404 is about something else
	case isNotFound(err):
		return c.sourceGone(ctx, err)
	}
	return errors.Join(cause, err)
}

// sourceGone reports a source object that does not exist, or its bucket.
func (c *Copier) sourceGone(ctx context.Context, cause error) error {
	if berr := c.bucketMissing(ctx, c.src, c.srcName, cause); berr != nil {
		return berr
	}
	return fmt.Errorf("%w in gs://%s", transfer.ErrMissingBlob, c.srcName)
}

// bucketMissing returns a *transfer.BucketError if bucket does not exist,
// and nil if it does or that cannot be told (no permission to read bucket
// metadata).
func (c *Copier) bucketMissing(ctx context.Context, b *storage.BucketHandle, name string, cause error) error {
	_, err := b.Retryer(noRetry).Attrs(ctx)
	if errors.Is(err, storage.ErrBucketNotExist) {
		return &transfer.BucketError{Bucket: "gs://" + name, Err: cause}
	}
	return nil
}

// classify gives a GCS client error the HTTP status transfer's retry
// policy understands (see transfer.IsRetryable).
func classify(err *error) { *err = cloudstatus.Wrap(*err) }

// reader classifies the errors of a source read. It holds the
// *storage.Reader in a named field rather than embedding it, whose WriteTo
// io.Copy would otherwise call, bypassing the classification.
type reader struct{ r *storage.Reader }

func (r reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = cloudstatus.Wrap(err)
	}
	return n, err
}

func (r reader) Close() error { return r.r.Close() }

func isNotFound(err error) bool {
	if errors.Is(err, storage.ErrObjectNotExist) || errors.Is(err, storage.ErrBucketNotExist) {
		return true
	}
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusNotFound
}

func version(a *storage.ObjectAttrs) transfer.ObjectVersion {
	return transfer.ObjectVersion{
		Size:       a.Size,
		Generation: strconv.FormatInt(a.Generation, 10),
		Checksum:   fmt.Sprintf("crc32c:%08x", a.CRC32C),
		Metadata:   a.Metadata,
	}
}

func generation(v transfer.ObjectVersion) (int64, error) {
	gen, err := strconv.ParseInt(v.Generation, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("gcscopy: bad generation %q: %w", v.Generation, err)
	}
	return gen, nil
}

// errProbe stops a writer that was only opened to learn the bucket name.
var errProbe = errors.New("gcscopy: bucket name probe")

// gcsOf returns the client and bucket name of the gcsblob bucket behind
// tb. gcsblob
// exposes its *storage.Client through As but not the bucket name, so a
// writer is opened whose BeforeWrite hook reads the name from the object
// handle and then refuses to continue; no request reaches the service.
func gcsOf(tb transfer.Bucket) (*storage.Client, string, error) {
	b, ok := gocloudblob.Unwrap(tb)
	var client *storage.Client
	if !ok || !b.As(&client) || client == nil {
		return nil, "", errors.New("not a gcsblob bucket")
	}
	var name string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := b.NewWriter(ctx, "ferry-bucket-name-probe", &blob.WriterOptions{
		ContentType: "application/octet-stream",
		BeforeWrite: func(as func(any) bool) error {
			var h **storage.ObjectHandle
			if as(&h) && h != nil && *h != nil {
				name = (*h).BucketName()
			}
			return errProbe
		},
	})
	if err == nil {
		// The driver ignored the hook's error; abort the write.
		cancel()
		_ = w.Close()
	} else if !errors.Is(err, errProbe) {
		return nil, "", fmt.Errorf("probing the GCS bucket name: %w", err)
	}
	if name == "" {
		return nil, "", errors.New("probing the GCS bucket name: the bucket did not expose an object handle")
	}
	return client, name, nil
}
