package rtmp

import "errors"

var (
	// ErrProtocol is wrapped by chunk-stream and message-level protocol violations.
	ErrProtocol = errors.New("rtmp: protocol error")
	// ErrKicked is the Stream.Close cause after PublishRequest.Close was called.
	ErrKicked = errors.New("rtmp: connection closed by the server")
	// ErrMessageTooLarge is wrapped when a chunk header announces a message longer than the
	// reader's ReadLimits.MaxMessage.
	ErrMessageTooLarge = errors.New("rtmp: message too large")
	// ErrBufferLimit is wrapped when the partly received messages of one connection would
	// take more than its ReadLimits.MaxBuffered bytes.
	ErrBufferLimit = errors.New("rtmp: connection buffer limit reached")
	// ErrMemoryBudget is wrapped when the Budget shared by all connections refuses more bytes.
	ErrMemoryBudget = errors.New("rtmp: ingest memory budget used up")
)
