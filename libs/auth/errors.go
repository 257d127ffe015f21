package auth

import "errors"

// ErrTokenNotFound is returned by a TokenLookup for an unknown token id.
var ErrTokenNotFound = errors.New("access token not found")

// ErrEnvironmentNotFound is returned by an EnvironmentLookup for an unknown environment.
var ErrEnvironmentNotFound = errors.New("environment not found")
