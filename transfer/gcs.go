package transfer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"cloud.google.com/go/storage"
	"github.com/opencontainers/go-digest"
	"gocloud.dev/blob"
	"google.golang.org/api/googleapi"
)

// gcsPair holds what a server-side copy between two GCS buckets needs.
type gcsPair struct {
	srcClient, dstClient *storage.Client
	srcBucket, dstBucket string
}

// detectGCS returns a gcsPair when both buckets are gcsblob buckets, and nil
// otherwise.
func detectGCS(src, dst *blob.Bucket) (*gcsPair, error) {
	var sc, dc *storage.Client
	if !src.As(&sc) || !dst.As(&dc) || sc == nil || dc == nil {
		return nil, nil
	}
	sn, err := gcsBucketName(src)
	if err != nil {
		return nil, err
	}
	dn, err := gcsBucketName(dst)
	if err != nil {
		return nil, err
	}
	return &gcsPair{srcClient: sc, dstClient: dc, srcBucket: sn, dstBucket: dn}, nil
}

// errProbe stops a writer that was only opened to learn the bucket name.
var errProbe = errors.New("transfer: bucket name probe")

// gcsBucketName learns the name of a gcsblob bucket. gcsblob exposes its
// *storage.Client through As but not the bucket name, so we open a writer
// whose BeforeWrite hook reads the name from the object handle and then
// refuses to continue; no request reaches the service.
func gcsBucketName(b *blob.Bucket) (string, error) {
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
		return "", fmt.Errorf("probing GCS bucket name: %w", err)
	}
	if name == "" {
		return "", errors.New("probing GCS bucket name: the bucket did not expose an object handle")
	}
	return name, nil
}

// copyServerSide copies a blob with the GCS rewrite API, so its bytes never
// pass through this process. The Copier is kept across retries: after a
// failure it still holds the last rewrite token, and the next attempt
// resumes a large copy instead of starting over. The result is verified by
// size and CRC32C against the source object.
func (t *transferer) copyServerSide(ctx context.Context, d digest.Digest, key string) (Result, error) {
	g := t.gcs
	noRetry := storage.WithPolicy(storage.RetryNever) // our RetryPolicy governs
	src := g.srcClient.Bucket(g.srcBucket).Object(key).Retryer(noRetry)
	dst := g.dstClient.Bucket(g.dstBucket).Object(key).Retryer(noRetry)

	var (
		res      Result
		srcAttrs *storage.ObjectAttrs
		copier   *storage.Copier
	)
	attempts, err := t.retry.do(ctx, "server_side_copy", func(ctx context.Context) error {
		if srcAttrs == nil {
			sa, err := src.Attrs(ctx)
			if err != nil {
				return gcsMissingOr(err, d)
			}
			da, err := dst.Attrs(ctx)
			switch {
			case err == nil && da.Size == sa.Size && da.CRC32C == sa.CRC32C:
				res = Result{Bytes: sa.Size, Skipped: true}
				return nil
			case err != nil && !errors.Is(err, storage.ErrObjectNotExist):
				return err
			}
			srcAttrs = sa
			// Pin the generation we checked, so the CRC32C we verify
			// against belongs to the bytes that get copied.
			copier = dst.CopierFrom(src.Generation(sa.Generation))
			copier.ContentType = sa.ContentType
		}
		if copier.RewriteToken != "" {
			t.log.InfoContext(ctx, "transfer: resuming server-side copy",
				slog.String("digest", string(d)), slog.Int64("size", srcAttrs.Size))
		}
		attrs, err := copier.Run(ctx)
		if err != nil {
			err = gcsMissingOr(err, d)
			if IsRetryable(err) {
				t.log.WarnContext(ctx, "transfer: retrying server-side copy", slog.String("digest", string(d)), slog.Any("error", err))
			}
			return err
		}
		if attrs.Size != srcAttrs.Size || attrs.CRC32C != srcAttrs.CRC32C {
			// The copy landed but is wrong: remove exactly that generation.
			delErr := dst.Generation(attrs.Generation).Delete(ctx)
			return errors.Join(fmt.Errorf("%w: %s: server-side copy has size %d crc32c %08x, source has size %d crc32c %08x",
				ErrCorrupt, d, attrs.Size, attrs.CRC32C, srcAttrs.Size, srcAttrs.CRC32C), delErr)
		}
		res = Result{Bytes: attrs.Size, ServerSide: true}
		return nil
	})
	res.Attempts = attempts
	return res, err
}

func gcsMissingOr(err error, d digest.Digest) error {
	var gerr *googleapi.Error
	if errors.Is(err, storage.ErrObjectNotExist) || (errors.As(err, &gerr) && gerr.Code == http.StatusNotFound) {
		return fmt.Errorf("%w in source: %s", ErrMissingBlob, d)
	}
	return err
}
