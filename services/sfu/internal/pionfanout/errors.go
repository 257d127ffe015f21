package pionfanout

import "errors"

var (
	// ErrPublisherExists: the anchor forwards one publisher; a second publish is refused.
	ErrPublisherExists = errors.New("pionfanout: a publisher is already connected")
	// ErrClosed: the server was closed.
	ErrClosed = errors.New("pionfanout: closed")
	// ErrGatheringTimeout: ICE gathering did not complete in time for a non-trickle answer.
	ErrGatheringTimeout = errors.New("pionfanout: ICE gathering did not complete")
)
