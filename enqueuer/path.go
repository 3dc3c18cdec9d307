package enqueuer

import (
	"fmt"
	"regexp"
	"strings"
)

// MaxPathLength is the longest repository path accepted, as in the
// distribution specification's name rules.
const MaxPathLength = 255

// pathComponent is one "/"-separated component of a repository name in the
// distribution specification: lower-case alphanumerics joined by single
// separators.
var pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// ValidatePath checks that path is a registry repository name such as
// "group/project/image": one or more non-empty components of lower-case
// letters, digits and separators, no "." or ".." component, at most
// MaxPathLength bytes. The error wraps ErrInvalidPath and says what is wrong.
func ValidatePath(path string) error {
	switch {
	case path == "":
		return fmt.Errorf("%w: empty", ErrInvalidPath)
	case len(path) > MaxPathLength:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidPath, len(path), MaxPathLength)
	}
	for i, c := range strings.Split(path, "/") {
		switch {
		case c == "":
			return fmt.Errorf("%w: %q has an empty segment at position %d", ErrInvalidPath, path, i+1)
		case c == "." || c == "..":
			return fmt.Errorf("%w: %q has a %q segment", ErrInvalidPath, path, c)
		case !pathComponent.MatchString(c):
			return fmt.Errorf("%w: %q: segment %q must be lower-case letters and digits joined by '.', '_', '__' or '-'", ErrInvalidPath, path, c)
		}
	}
	return nil
}
