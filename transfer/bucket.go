package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"
)

// Bucket is the object store this package reads and writes: the source and
// destination of a Transferer, the source of an Importer and LayoutReader,
// the destination of a LayoutSink. It is deliberately small, so that a
// registry with its own storage driver can implement it directly; package
// transfer/gocloudblob adapts any gocloud.dev/blob bucket (fileblob,
// memblob, gcsblob, s3blob, azureblob, ...) to it, and
// transfertest.BucketSuite checks an implementation against the contract
// below.
//
// Keys are slash-separated paths without a leading slash. Implementations
// must be safe for concurrent use and honour ctx in every call.
//
// Errors:
//   - An object that does not exist: the error wraps ErrNotExist.
//   - A bucket that does not exist: List fails with an error wrapping
//     ErrNotExist even for an empty prefix (a listing of a prefix with
//     nothing under it in an existing bucket is an empty page, not an
//     error). The package then reports a *BucketError naming the bucket.
//   - A transient failure worth retrying: an error the RetryPolicy's
//     Retryable recognises (see IsRetryable), for example one with an
//     HTTPStatusCode() int method returning 408, 429 or 5xx, a net.Error
//     timeout, io.ErrUnexpectedEOF or a connection reset.
type Bucket interface {
	// NewReader opens the object at key for reading from its start. The
	// reader's Size is the object's size; reading fewer bytes than that
	// before io.EOF is a truncated read, which the caller detects.
	NewReader(ctx context.Context, key string) (Reader, error)
	// NewWriter opens a writer that replaces the object at key. Nothing
	// is visible under key until Close returns nil, and then the whole
	// content and opts.Metadata are, at once. If ctx is cancelled before
	// Close, the write is abandoned: Close returns an error and the
	// object under key (if any) is left as it was. A failed Close leaves
	// the old object or the new one, never part of the new one.
	NewWriter(ctx context.Context, key string, opts WriterOptions) (Writer, error)
	// Attributes describes the object at key without reading it.
	Attributes(ctx context.Context, key string) (Attributes, error)
	// List returns one page of the objects whose keys start with
	// opts.Prefix, in lexicographical key order. With a Delimiter, keys
	// that have it after the prefix are collapsed into one entry per
	// "directory" (IsDir, Key ending with the delimiter). A page token
	// stays valid when objects are deleted: deleting what earlier pages
	// returned (as ListAll's callers may while they iterate) makes the
	// next page skip nothing still there.
	List(ctx context.Context, opts ListOptions) (ListPage, error)
	// Delete removes the object at key; a missing object is an error
	// wrapping ErrNotExist.
	Delete(ctx context.Context, key string) error
}

// Reader reads one object. Close releases it; Read after Close is an
// error.
type Reader interface {
	io.ReadCloser
	// Size is the object's size in bytes.
	Size() int64
	// ModTime is when the object was last written.
	ModTime() time.Time
}

// Writer writes one object; see Bucket.NewWriter for when it commits.
type Writer interface {
	io.Writer
	// Close commits the object, unless the writer's context was
	// cancelled before it.
	Close() error
}

// WriterOptions are the properties of an object being written.
type WriterOptions struct {
	// ContentType is the object's MIME type. Empty means
	// "application/octet-stream".
	ContentType string
	// Metadata is stored with the object and returned by Attributes.
	// Keys are lowercase ASCII; values are UTF-8.
	Metadata map[string]string
}

// Attributes describes a stored object.
type Attributes struct {
	// Size is the object's size in bytes.
	Size int64
	// ModTime is when the object was last written.
	ModTime time.Time
	// Metadata is what WriterOptions.Metadata set (nil or empty if
	// nothing).
	Metadata map[string]string
}

// ListOptions selects the objects a List call returns.
type ListOptions struct {
	// Prefix keeps only keys that start with it.
	Prefix string
	// Delimiter, if not empty, collapses the keys below it into
	// directories (usually "/").
	Delimiter string
	// PageSize is the most objects to return; <= 0 means the
	// implementation's default (at least 1).
	PageSize int
	// PageToken is the NextPageToken of the previous page; empty for the
	// first page.
	PageToken string
}

// ListPage is one page of a listing.
type ListPage struct {
	// Objects are the page's objects and directories in key order.
	Objects []ListObject
	// NextPageToken continues the listing; empty on the last page.
	NextPageToken string
}

// ListObject is one entry of a listing.
type ListObject struct {
	// Key is the object's key, or for a directory its prefix including
	// the trailing delimiter.
	Key string
	// IsDir is true for a directory (ListOptions.Delimiter); Size and
	// ModTime are then zero.
	IsDir bool
	// Size is the object's size in bytes.
	Size int64
	// ModTime is when the object was last written.
	ModTime time.Time
}

// ErrNotExist means an object (or, from List, the bucket) does not exist.
// Bucket implementations wrap it; the package's own errors say what was
// missing (ErrMissingBlob, ErrBadLink, *BucketError).
var ErrNotExist = errors.New("transfer: object does not exist")

// ListAll returns every object List returns for opts, page after page. A
// failed page is yielded once as an error and ends the iteration.
func ListAll(ctx context.Context, b Bucket, opts ListOptions) iter.Seq2[ListObject, error] {
	return func(yield func(ListObject, error) bool) {
		for {
			page, err := b.List(ctx, opts)
			if err != nil {
				yield(ListObject{}, err)
				return
			}
			for _, o := range page.Objects {
				if !yield(o, nil) {
					return
				}
			}
			if page.NextPageToken == "" {
				return
			}
			opts.PageToken = page.NextPageToken
		}
	}
}

// WriteAll writes data to key in b in one call: it lands whole or, when
// the write fails, not at all (the writer is abandoned).
func WriteAll(ctx context.Context, b Bucket, key string, data []byte, opts WriterOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.NewWriter(ctx, key, opts)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		cancel()
		return errors.Join(err, ignoreCanceled(w.Close()))
	}
	return w.Close()
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// isNotExist reports whether err says an object does not exist.
func isNotExist(err error) bool { return errors.Is(err, ErrNotExist) }

// accessible reports whether bucket b exists, by listing at most one
// object: a missing bucket fails List with ErrNotExist. ok is true when
// that cannot be told (another error).
func accessible(ctx context.Context, b Bucket) bool {
	_, err := b.List(ctx, ListOptions{PageSize: 1})
	return !isNotExist(err)
}

// bucketErr turns an ErrNotExist error into a *BucketError naming the
// bucket when the bucket itself is not there; other errors pass through.
func bucketErr(ctx context.Context, err error, b Bucket, name string) error {
	if !isNotExist(err) || errors.Is(err, ErrBucketNotFound) {
		return err
	}
	if !accessible(ctx, b) {
		return &BucketError{Bucket: name, Err: err}
	}
	return err
}

// missingBlob reports blob d that is not in bucket b (named name), or the
// bucket that is not there.
func missingBlob(ctx context.Context, err error, b Bucket, name, d string) error {
	err = bucketErr(ctx, err, b, name)
	if isNotExist(err) && !errors.Is(err, ErrBucketNotFound) {
		return fmt.Errorf("%w in %s: %s", ErrMissingBlob, name, d)
	}
	return err
}
