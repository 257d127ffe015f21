package loadtest

import "errors"

// ErrNoSimulcast: simulcast was asked for but the SFU offered no layers or the publish
// connection negotiated no mid/rid header extensions.
var ErrNoSimulcast = errors.New("loadtest: simulcast not available")
