package dashboard

import "errors"

// ErrConfig reports a Config that New cannot use; the message says which
// field and why.
var ErrConfig = errors.New("dashboard: invalid config")
