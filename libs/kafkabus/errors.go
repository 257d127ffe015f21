package kafkabus

import "errors"

// ErrConfig is returned for an incomplete configuration.
var ErrConfig = errors.New("kafkabus: invalid configuration")
