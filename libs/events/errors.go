package events

import "errors"

// ErrInvalidEnvelope is returned by Parse for bytes that are not a Spacecast CloudEvent.
var ErrInvalidEnvelope = errors.New("invalid event envelope")
