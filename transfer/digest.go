package transfer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

const (
	sha256Prefix = "sha256:"
	hexLen       = 64
)

// Digest is a content address of the form "sha256:<64 lowercase hex>".
// Only sha256 is supported, as in the distribution storage layout.
type Digest string

// ParseDigest validates s and returns it as a Digest. The error wraps
// ErrInvalidDigest and quotes the offending input.
func ParseDigest(s string) (Digest, error) {
	if !strings.HasPrefix(s, sha256Prefix) || !isHex64(s[len(sha256Prefix):]) {
		return "", fmt.Errorf("%w: %q (want sha256: and 64 lowercase hex characters)", ErrInvalidDigest, clip(s))
	}
	return Digest(s), nil
}

// DigestOf returns the sha256 digest of p.
func DigestOf(p []byte) Digest {
	sum := sha256.Sum256(p)
	return Digest(sha256Prefix + hex.EncodeToString(sum[:]))
}

// Validate reports whether d is well formed.
func (d Digest) Validate() error {
	_, err := ParseDigest(string(d))
	return err
}

// Hex returns the 64 hex characters of d, or "" if d is malformed.
func (d Digest) Hex() string {
	if d.Validate() != nil {
		return ""
	}
	return string(d[len(sha256Prefix):])
}

// String returns d as a string.
func (d Digest) String() string { return string(d) }

func digestFromHex(h string) (Digest, error) {
	if !isHex64(h) {
		return "", fmt.Errorf("%w: %q is not 64 lowercase hex characters", ErrInvalidDigest, clip(h))
	}
	return Digest(sha256Prefix + h), nil
}

func isHex64(s string) bool {
	if len(s) != hexLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// clip shortens untrusted input before it goes into an error message.
func clip(s string) string {
	const maxLen = 100
	if len(s) <= maxLen {
		return s
	}
	return s[:maxLen] + "..."
}
