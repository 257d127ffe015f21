package ssrf

import "errors"

// Sentinel errors.
var (
	// ErrRefused is returned for an address webhooks may not reach.
	ErrRefused = errors.New("address refused: webhooks may not reach internal networks")
	// ErrBadURL is returned for a receiver URL written in a form the guard refuses: not
	// http(s), credentials, an IPv6 zone, a numeric host that is not a plain dotted-decimal
	// IPv4 address, or a host that is not a DNS name.
	ErrBadURL = errors.New("not accepted")
)
