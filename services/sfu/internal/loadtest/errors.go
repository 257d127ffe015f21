package loadtest

import "errors"

// ErrNoSimulcast: simulcast was asked for but the SFU offered no layers or the publish
// connection negotiated no mid/rid header extensions.
var ErrNoSimulcast = errors.New("loadtest: simulcast not available")

// ErrChildNotReady: a server child process ended before writing its READY line.
var ErrChildNotReady = errors.New("loadtest: the child process did not start")

// ErrAnchorSignal: the pion fan-out anchor refused an offer.
var ErrAnchorSignal = errors.New("loadtest: anchor signalling failed")

// ErrAnchorScope: the anchor forwards one publisher's single-layer camera and microphone.
var ErrAnchorScope = errors.New("loadtest: the anchor comparison takes one publisher without simulcast")
