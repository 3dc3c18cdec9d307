package importserver

import (
	"fmt"
	"strings"

	"github.com/ferryhq/ferry/transfer"
)

// ValidatePath checks that path is a repository name such as
// "group/project/image" (the distribution specification's rules, as
// transfer.ValidateRepository applies them). The error wraps
// ErrInvalidPath and says what is wrong.
func ValidatePath(path string) error {
	if err := transfer.ValidateRepository(path); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidPath, strings.TrimPrefix(err.Error(), "transfer: invalid name: "))
	}
	return nil
}

// name is the last component of a repository path.
func name(path string) string {
	return path[strings.LastIndexByte(path, '/')+1:]
}
