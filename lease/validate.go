package lease

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// MaxKeyLen is the longest key, in bytes, that a Locker accepts.
	MaxKeyLen = 255
	// MinTTL is the shortest ttl a Locker accepts (Redis counts in
	// milliseconds).
	MinTTL = time.Millisecond
	// MaxTTL is the longest ttl a Locker accepts. A lease is meant to be
	// renewed (Guard does it); a longer ttl only delays recovery when a
	// holder dies, and a huge one is almost certainly a unit mistake.
	MaxTTL = 24 * time.Hour
)

// CheckKey reports, as an error wrapping ErrInvalid, why key cannot be
// leased: it must be 1 to MaxKeyLen bytes of valid UTF-8 without NUL.
func CheckKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: key is empty", ErrInvalid)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: key %.32q... is %d bytes, longer than %d", ErrInvalid, key, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key %q is not valid UTF-8", ErrInvalid, key)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("%w: key %q contains a NUL byte", ErrInvalid, key)
	}
	return nil
}

// CheckTTL reports, as an error wrapping ErrInvalid, why ttl cannot be a
// lease's time to live: it must be within [MinTTL, MaxTTL].
func CheckTTL(ttl time.Duration) error {
	switch {
	case ttl <= 0:
		return fmt.Errorf("%w: ttl %s is not positive", ErrInvalid, ttl)
	case ttl < MinTTL:
		return fmt.Errorf("%w: ttl %s is shorter than %s", ErrInvalid, ttl, MinTTL)
	case ttl > MaxTTL:
		return fmt.Errorf("%w: ttl %s is longer than %s", ErrInvalid, ttl, MaxTTL)
	}
	return nil
}

// Check is CheckKey and CheckTTL; backends call it first in Acquire.
func Check(key string, ttl time.Duration) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	return CheckTTL(ttl)
}
