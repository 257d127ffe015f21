package store

import "errors"

// Sentinel errors of the live stream store; the API layer maps them to HTTP.
var (
	ErrNotFound      = errors.New("live stream not found")
	ErrAssetNotFound = errors.New("asset not found")
	ErrPlaybackID    = errors.New("playback id not found")
)

// ErrDisabled: the live stream is disabled and refuses publishers.
var ErrDisabled = errors.New("live stream is disabled")

// ErrRecordingEnded: the stream's active asset is no longer recording (it is ready).
var ErrRecordingEnded = errors.New("the recording has ended")

// ErrRecordingActive: the live stream has a recording in progress (Delete refuses it).
var ErrRecordingActive = errors.New("the live stream is recording")

// ErrBroadcastNotActive: no active broadcast with that id sends to a live stream here.
var ErrBroadcastNotActive = errors.New("no active broadcast to a live stream")

// ErrTargetNotFound: the live stream has no simulcast target with that id.
var ErrTargetNotFound = errors.New("simulcast target not found")

// ErrNotIdle: the live stream has an encoder connected or is active; simulcast targets may only
// be created or deleted while it is idle.
var ErrNotIdle = errors.New("the live stream is not idle")

// ErrRenditionNotFound: the asset has no static rendition with that id (or none ready with that
// file name).
var ErrRenditionNotFound = errors.New("static rendition not found")

// ErrRenditionExists: the asset already has a static rendition of that resolution.
var ErrRenditionExists = errors.New("the asset already has a static rendition of that resolution")

// ErrMP4SupportConflict: the asset's renditions come from mp4_support and the static renditions
// API at once (Mux allows one or the other).
var ErrMP4SupportConflict = errors.New("mp4_support and static_renditions cannot both be used")
