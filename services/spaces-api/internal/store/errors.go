package store

import "errors"

// Sentinel errors of the spaces store; the API layer maps them to HTTP.
var (
	ErrNotFound = errors.New("space not found")
	ErrActive   = errors.New("space is active")

	ErrBroadcastNotFound   = errors.New("broadcast not found")
	ErrBroadcastExists     = errors.New("the space already has a broadcast")
	ErrBroadcastActive     = errors.New("broadcast is active")
	ErrSpaceNotActive      = errors.New("space is not active")
	ErrUnknownLiveStream   = errors.New("no such live stream in this environment")
	ErrLiveStreamBroadcast = errors.New("the live stream receives another active broadcast")
	ErrLiveStreamGone      = errors.New("the broadcast's live stream was deleted")
)
