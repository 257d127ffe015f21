package server

import "errors"

// ErrHalted is what FlushEvents returns on a halted node.
var ErrHalted = errors.New("the node is halted")
