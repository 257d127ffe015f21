package store

import "errors"

// Sentinel errors of the keys store; the API layer maps them to HTTP.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)
