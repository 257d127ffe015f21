package spacejwt

import "errors"

// Errors, each naming a reason a client can be told.
var (
	ErrMalformed     = errors.New("token is malformed")
	ErrAlgorithm     = errors.New("token must be signed with RS256")
	ErrUnknownKey    = errors.New("token's signing key (kid) is unknown")
	ErrSignature     = errors.New("token signature is invalid")
	ErrExpired       = errors.New("token has expired")
	ErrNotYetValid   = errors.New("token is not valid yet")
	ErrAudience      = errors.New("token audience is wrong")
	ErrMissingExpiry = errors.New("token has no exp claim")
	ErrRole          = errors.New("token role must be publisher or subscriber")
	ErrSubject       = errors.New("token has no sub claim")
	ErrParticipantID = errors.New("token participant_id must be at most 128 printable characters")
	ErrLifetime      = errors.New("token is valid for longer than allowed (exp - iat)")
)
