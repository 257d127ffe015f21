package simulcast

import "errors"

// Errors returned by this package.
var (
	// ErrBadOptions: a constructor was given options it cannot work with.
	ErrBadOptions = errors.New("simulcast: bad options")
	// ErrUnsupportedCodec: keyframes of this codec cannot be found, so layers cannot be switched.
	ErrUnsupportedCodec = errors.New("simulcast: unsupported codec")
	// ErrNoEstimator: no bandwidth estimator was built for this peer connection (it was not
	// created from the API whose registry RegisterBWE set up, or it was taken already).
	ErrNoEstimator = errors.New("simulcast: no bandwidth estimator for this peer connection")
)
