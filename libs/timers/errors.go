package timers

import "errors"

// ErrBadArgs is returned for a non-positive lease or limit.
var ErrBadArgs = errors.New("timers: lease and limit must be positive")
