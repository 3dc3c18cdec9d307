package transfer

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/opencontainers/go-digest"
)

// ExistingPolicy says how a blob already present at the destination is
// checked before the copy is skipped.
type ExistingPolicy int

const (
	// VerifyChecksum (the default) trusts an object that Ferry committed
	// after verifying it: its metadata names the digest (MetadataDigest),
	// its size is right and, where Ferry recorded the service checksum
	// (MetadataChecksum), the object still has it. For a server-side copy
	// an object whose service checksum equals the verified source's is
	// trusted too. Any other object is read and hashed.
	VerifyChecksum ExistingPolicy = iota
	// VerifyContent reads and hashes every existing object.
	VerifyContent
	// TrustSize keeps any existing object of the right size without
	// reading it, as earlier versions did. A same-size corrupt object is
	// then kept.
	TrustSize
)

// String returns "verify-checksum", "verify-content" or "trust-size".
func (p ExistingPolicy) String() string {
	switch p {
	case VerifyContent:
		return "verify-content"
	case TrustSize:
		return "trust-size"
	}
	return "verify-checksum"
}

// existingState is what the destination holds under a blob's key.
type existingState int

const (
	existingAbsent existingState = iota
	existingGood
	existingBad
)

// destObject is what is known about a destination object without reading
// it.
type destObject struct {
	size     int64
	metadata map[string]string
	checksum string // service checksum, "" when unknown
}

// judgeExisting decides about an existing destination object of a blob
// that must be want bytes. trustedChecksum, if not "", is the service
// checksum of content already known to match d (a verified source). It
// hashes the object only when the policy and metadata require it; the
// bytes it read are returned.
//
// ours is set when an earlier attempt of this Transfer may have committed
// the object and failed: its record proves nothing about what landed (a bit
// may have flipped on the way up), so the content is hashed.
func (t *transferer) judgeExisting(ctx context.Context, d digest.Digest, key string, obj destObject, want int64, trustedChecksum string, ours bool) (existingState, int64, error) {
	if obj.size != want {
		t.log.WarnContext(ctx, "transfer: destination object has the wrong size",
			slog.String("digest", d.String()), slog.Int64("size", obj.size), slog.Int64("want", want))
		return existingBad, 0, nil
	}
	switch t.opts.Existing {
	case TrustSize:
		return existingGood, 0, nil
	case VerifyChecksum:
		if ours && trustedChecksum == "" {
			break
		}
		recorded := obj.metadata[MetadataChecksum]
		switch {
		case trustedChecksum != "" && obj.checksum == trustedChecksum:
			return existingGood, 0, nil
		case obj.metadata[MetadataDigest] == d.String() && (recorded == "" || obj.checksum == "" || recorded == obj.checksum):
			return existingGood, 0, nil
		}
	}
	ok, n, err := t.hashDestination(ctx, d, key, want)
	if err != nil {
		return existingAbsent, n, err
	}
	if !ok {
		return existingBad, n, nil
	}
	return existingGood, n, nil
}

// hashDestination reads the destination object and reports whether it
// hashes to d. A mismatch is re-read (up to CorruptRetries more times)
// before it counts, so a flipped bit on the way does not replace a good
// object.
func (t *transferer) hashDestination(ctx context.Context, d digest.Digest, key string, want int64) (bool, int64, error) {
	var total int64
	for range t.opts.CorruptRetries + 1 {
		var (
			got digest.Digest
			n   int64
		)
		_, err := t.retry.do(ctx, "read", func(ctx context.Context) error {
			r, err := t.dst.NewReader(ctx, key)
			if err != nil {
				return err
			}
			defer r.Close()
			n, got, err = t.hashReader(ctx, r, d.Algorithm())
			total += n
			return err
		})
		if err != nil {
			return false, total, fmt.Errorf("verifying the existing destination object: %w", bucketErr(ctx, err, t.dst, t.opts.DestinationName))
		}
		if got == d && n == want {
			return true, total, nil
		}
	}
	return false, total, nil
}
