package compositor

import "errors"

// Sentinel errors. The wiring maps them to its own API errors.
var (
	// ErrBadOptions: an Options field is out of range (size, frame rate, layout, preset, URL).
	ErrBadOptions = errors.New("compositor: bad options")
	// ErrBadLayout: a layout name other than gallery, active-speaker or crop.
	ErrBadLayout = errors.New("compositor: unknown layout")
	// ErrUnsupportedCodec: AddVideo with a codec other than VP8 or H.264.
	ErrUnsupportedCodec = errors.New("compositor: unsupported codec")
	// ErrDuplicateID: AddVideo/AddAudio with an id that already has a track of that kind.
	ErrDuplicateID = errors.New("compositor: id already added")
	// ErrUnknownID: a command naming an id that has no tile (or no track).
	ErrUnknownID = errors.New("compositor: unknown id")
	// ErrBadID: an empty id.
	ErrBadID = errors.New("compositor: empty id")
	// ErrBackground: the background image is too large or ffmpeg could not decode it.
	ErrBackground = errors.New("compositor: bad background image")
	// ErrClosed: the compositor was closed or its encoder ended.
	ErrClosed = errors.New("compositor: closed")
	// ErrFFmpeg: ffmpeg could not be started.
	ErrFFmpeg = errors.New("compositor: ffmpeg")
)
