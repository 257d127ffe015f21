package session

import "errors"

// Sentinel errors of Begin; ingest maps each to an RTMP error status.
var (
	ErrBadKey   = errors.New("unknown stream key")
	ErrDisabled = errors.New("live stream is disabled")
	ErrBusy     = errors.New("live stream already has a publisher")
)
