package simulcast

import "errors"

// Sentinel errors.
var (
	// ErrBadURL is returned for a target URL the pusher will not use: not rtmp:// or
	// rtmps://, no host, credentials, a bad port, no app, or a bad stream key.
	ErrBadURL = errors.New("simulcast target url not accepted")
	// ErrStopped is returned by Write after Stop.
	ErrStopped = errors.New("simulcast: pusher stopped")
)
