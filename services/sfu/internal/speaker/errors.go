package speaker

import "errors"

// Errors returned by this package.
var (
	// ErrBadExtension: an audio-level header extension payload that is not exactly one byte.
	ErrBadExtension = errors.New("speaker: audio level extension must be one byte")
	// ErrNoExtension: an RTP packet without the audio level header extension.
	ErrNoExtension = errors.New("speaker: no audio level extension in the packet")
	// ErrBadOptions: Options out of range.
	ErrBadOptions = errors.New("speaker: bad options")
)
