package store

import "errors"

// Sentinel errors of the spaces store; the API layer maps them to HTTP.
var (
	ErrNotFound = errors.New("space not found")
	ErrActive   = errors.New("space is active")
)
