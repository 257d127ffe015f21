package flv

import "errors"

var (
	// ErrUnsupportedCodec is returned (wrapped, with the codec named) for media that is not H.264
	// video or AAC audio.
	ErrUnsupportedCodec = errors.New("flv: unsupported codec")
	// ErrMalformed is returned (wrapped) for a truncated or invalid tag body, sequence header or file.
	ErrMalformed = errors.New("flv: malformed data")
)
