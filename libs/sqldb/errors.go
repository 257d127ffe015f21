package sqldb

import "errors"

// ErrBadDSN is returned for a DSN that names no supported engine.
var ErrBadDSN = errors.New("unsupported SQL DSN: want postgres://... or sqlite:PATH")
