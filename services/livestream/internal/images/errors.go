package images

import "errors"

var (
	// ErrBadRequest: the image request's name or parameters are wrong (400).
	ErrBadRequest = errors.New("bad image request")
	// ErrOutOfRange: the time asked for is not in the recording (400).
	ErrOutOfRange = errors.New("time outside the recording")
	// ErrNoMedia: the recording has no segment yet (412 for a live stream, 404 for an asset).
	ErrNoMedia = errors.New("no recorded media")
)
