package transfer

import (
	// The digest algorithms the layout may use must be linked in for
	// go-digest's Algorithm.Available to report them.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/ferryhq/ferry/internal/clip"
)

// ParseDigest validates s as an OCI content digest ("sha256:<64 hex>",
// "sha512:<128 hex>" or another algorithm go-digest knows, lowercase hex)
// and returns it. The error wraps ErrInvalidDigest and quotes the offending
// input.
func ParseDigest(s string) (digest.Digest, error) {
	d := digest.Digest(s)
	if err := ValidateDigest(d); err != nil {
		return "", err
	}
	return d, nil
}

// ValidateDigest reports whether d is a well-formed digest of an available
// algorithm (sha256, sha384 or sha512). The error wraps ErrInvalidDigest, so
// callers can tell bad input from storage failures with errors.Is.
func ValidateDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: %q: %w", ErrInvalidDigest, clipInput(string(d)), err)
	}
	return nil
}

// digestFromPath rebuilds the digest a layout directory pair
// (<algorithm>/<encoded>) names, validating both.
func digestFromPath(alg, encoded string) (digest.Digest, error) {
	return ParseDigest(alg + ":" + encoded)
}

// clip shortens untrusted input before it goes into an error message.
func clipInput(s string) string {
	return clip.Marked(s, 100)
}
