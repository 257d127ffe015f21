package sfu

import "github.com/spacecast/spacecast/services/sfu/internal/server"

// ErrSpaceNotFound is what a SpaceLookup returns (possibly wrapped) for a space that does
// not exist.
var ErrSpaceNotFound = server.ErrSpaceNotFound
