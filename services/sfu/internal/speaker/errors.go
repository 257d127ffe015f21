package speaker

import "errors"

// Errors returned by this package.
var (
	// ErrBadExtension: an audio-level header extension payload that is not exactly one byte.
	ErrBadExtension = errors.New("speaker: audio level extension must be one byte")
	// ErrBadOptions: Options out of range.
	ErrBadOptions = errors.New("speaker: bad options")
)
