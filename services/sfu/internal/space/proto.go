package space

// Wire types of the Mux Spaces signaling protocol (docs/rtc-protocol.md): every frame is one
// JSON object whose single message key names the message, plus an optional request_id.

// Track kinds (TrackKind on the wire).
const (
	KindAudio = 1
	KindVideo = 2
)

// Participant roles on the wire.
const (
	RolePublisher  = 1
	RoleSubscriber = 2
)

// Participant statuses on the wire.
const (
	StatusConnected    = 1
	StatusDisconnected = 2
	StatusReconnected  = 3
)

// Connection-level error types (the SDK maps them before joined).
const (
	ErrTypeUnknown             = 0
	ErrTypeDisconnected        = 1
	ErrTypeDuplicate           = 3
	ErrTypePeerConnection      = 4 // the SDK's PeerConnectionClosed
	ErrTypeInvalidPendingTrack = 5
	ErrTypeInvalidJWT          = 6
	ErrTypeParticipantLimit    = 7
)

// Request-level error types (with request_error.correlator).
const (
	ReqErrSubscribe           = 3
	ReqErrUnsubscribe         = 4
	ReqErrCustomEvent         = 5
	ReqErrCustomEventRate     = 6
	ReqErrSetDisplayName      = 7
	ReqErrSetDisplayNameRate  = 8
	ReqErrInvalidProtoVersion = 9
)

// Track is a published track as others see it.
type Track struct {
	TID      string         `json:"tid"`
	Type     int            `json:"type"`
	Source   string         `json:"source"`
	Name     string         `json:"name"`
	Muted    bool           `json:"muted"`
	Width    int            `json:"width"`
	Height   int            `json:"height"`
	Metadata map[string]any `json:"metadata"`
	Mid      string         `json:"mid"`
}

// TrackRef names a track in remove_track / track_muted / track_unmuted.
type TrackRef struct {
	TID string `json:"tid"`
}

// Participant is another participant as a client sees it.
type Participant struct {
	ConnectionID  string  `json:"connection_id"`
	ParticipantID string  `json:"participant_id"`
	Role          int     `json:"role"`
	Status        int     `json:"status"`
	DisplayName   string  `json:"display_name"`
	Tracks        []Track `json:"tracks"`
}

// PendingTrack is what a publisher announces before the offer that carries the track.
type PendingTrack struct {
	TID    string `json:"tid"`
	Type   int    `json:"type"`
	Name   string `json:"name"`
	Muted  bool   `json:"muted"`
	Source string `json:"source"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Mid    string `json:"mid"`
}

// SfuDescription is an SDP of one subscribe connection.
type SfuDescription struct {
	SfuID string `json:"sfu_id"`
	SDP   string `json:"sdp"`
}

// ICECandidate is one trickled candidate.
type ICECandidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdp_mid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdp_mline_index,omitempty"`
	UsernameFragment *string `json:"username_fragment,omitempty"`
}

// Candidate types: which peer connection a candidate belongs to.
const (
	CandidateSubscribe = 1
	CandidatePublish   = 2
)

// CandidateMsg is the body of candidate.
type CandidateMsg struct {
	Candidate ICECandidate `json:"candidate"`
	Type      int          `json:"type"`
	SfuID     string       `json:"sfu_id"`
}

// ICEServer is one STUN/TURN server handed to clients.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Encoding is one simulcast layer the publisher should send.
type Encoding struct {
	RID                   string  `json:"rid"`
	MaxBitrate            int     `json:"max_bitrate"`
	ScaleResolutionDownBy float64 `json:"scale_resolution_down_by"`
	MaxFramerate          float64 `json:"max_framerate"`
}

// Simulcast lists the layers for cameras and screenshares (empty: one layer).
type Simulcast struct {
	CameraEncodings      []Encoding `json:"camera_encodings"`
	ScreenshareEncodings []Encoding `json:"screenshare_encodings"`
}

// Limits are the client-side limits the SDK enforces (the server enforces them as well).
type Limits struct {
	CustomEventsPerSecond    int     `json:"custom_events_per_second"`
	DefaultTrackLimit        int     `json:"default_track_limit"`
	SecondsPerSetDisplayName float64 `json:"seconds_per_set_display_name"`
}

// Joined is the answer to a successful connect.
type Joined struct {
	SessionID     string           `json:"session_id"`
	ConnectionID  string           `json:"connection_id"`
	ParticipantID string           `json:"participant_id"`
	SubSfus       []SfuDescription `json:"sub_sfus"`
	Broadcasting  bool             `json:"broadcasting"`
	Participants  []Participant    `json:"participants"`
	Simulcast     Simulcast        `json:"simulcast"`
	ICEServers    []ICEServer      `json:"ice_servers"`
	Limits        Limits           `json:"limits"`
	WatchRTCToken string           `json:"watchrtc_token"`
	DisplayName   string           `json:"display_name"`
}

// TrackEvent is add_track.
type TrackEvent struct {
	ConnectionID string `json:"connection_id"`
	Track        Track  `json:"track"`
}

// TrackRefEvent is remove_track, track_muted and track_unmuted.
type TrackRefEvent struct {
	ConnectionID string   `json:"connection_id"`
	Track        TrackRef `json:"track"`
}

// ConnectionRef is participant_disconnected.
type ConnectionRef struct {
	ConnectionID string `json:"connection_id"`
}

// SpeakerTrack is one entry of active_speakers.
type SpeakerTrack struct {
	ConnectionID string `json:"connection_id"`
	TrackID      string `json:"track_id"`
}

// ActiveSpeakers is the full current set of speakers.
type ActiveSpeakers struct {
	Tracks []SpeakerTrack `json:"tracks"`
}

// CustomEvent is custom_event in both directions (the server adds connection_id and
// sequence_num).
type CustomEvent struct {
	ID           string `json:"id"`
	Payload      string `json:"payload"`
	Scope        int    `json:"scope"`
	ConnectionID string `json:"connection_id"`
	SequenceNum  int64  `json:"sequence_num"`
}

// ParticipantUpdate carries a new display name.
type ParticipantUpdate struct {
	ConnectionID string `json:"connection_id"`
	DisplayName  string `json:"display_name"`
}

// ConnectionTracks is one entry of subscribe_tracks / unsubscribe_tracks.
type ConnectionTracks struct {
	ConnectionID string   `json:"connection_id"`
	TrackIDs     []string `json:"track_ids"`
}

// SubscribeRequest is the body of subscribe_tracks / unsubscribe_tracks from a client.
type SubscribeRequest struct {
	Connections []ConnectionTracks `json:"connections"`
}

// SubscribeResult answers subscribe_tracks / unsubscribe_tracks.
type SubscribeResult struct {
	Successes []ConnectionTracks `json:"successes"`
	Failures  []ConnectionTracks `json:"failures"`
}

// RequestError names the requests an error answers.
type RequestError struct {
	Correlator string `json:"correlator"`
}

// Error is the error message.
type Error struct {
	Type         int           `json:"type"`
	Message      string        `json:"message"`
	Visibility   int           `json:"visibility"`
	Fatal        bool          `json:"fatal"`
	Retry        bool          `json:"retry"`
	RequestError *RequestError `json:"request_error,omitempty"`
}

// Out is one server → client frame: exactly one message field is set.
type Out struct {
	RequestID               string             `json:"request_id,omitempty"`
	Joined                  *Joined            `json:"joined,omitempty"`
	ParticipantConnected    *Participant       `json:"participant_connected,omitempty"`
	ParticipantDisconnected *ConnectionRef     `json:"participant_disconnected,omitempty"`
	AddTrack                *TrackEvent        `json:"add_track,omitempty"`
	RemoveTrack             *TrackRefEvent     `json:"remove_track,omitempty"`
	SubOffer                *SfuDescription    `json:"sub_offer,omitempty"`
	Candidate               *CandidateMsg      `json:"candidate,omitempty"`
	Answer                  string             `json:"answer,omitempty"`
	TrackMuted              *TrackRefEvent     `json:"track_muted,omitempty"`
	TrackUnmuted            *TrackRefEvent     `json:"track_unmuted,omitempty"`
	ActiveSpeakers          *ActiveSpeakers    `json:"active_speakers,omitempty"`
	CustomEvent             *CustomEvent       `json:"custom_event,omitempty"`
	ParticipantUpdate       *ParticipantUpdate `json:"participant_update,omitempty"`
	BroadcastStateUpdate    int                `json:"broadcast_state_update,omitempty"`
	SubscribeTracks         *SubscribeResult   `json:"subscribe_tracks,omitempty"`
	UnsubscribeTracks       *SubscribeResult   `json:"unsubscribe_tracks,omitempty"`
	Error                   *Error             `json:"error,omitempty"`
}

// In is one client → server frame.
type In struct {
	RequestID         string            `json:"request_id,omitempty"`
	SubAnswer         *SfuDescription   `json:"sub_answer,omitempty"`
	Offer             *string           `json:"offer,omitempty"`
	Candidate         *CandidateMsg     `json:"candidate,omitempty"`
	PendingTrack      *PendingTrack     `json:"pending_track,omitempty"`
	MuteTrack         *string           `json:"mute_track,omitempty"`
	UnmuteTrack       *string           `json:"unmute_track,omitempty"`
	SubscribeTracks   *SubscribeRequest `json:"subscribe_tracks,omitempty"`
	UnsubscribeTracks *SubscribeRequest `json:"unsubscribe_tracks,omitempty"`
	SetDisplayName    *string           `json:"set_display_name,omitempty"`
	CustomEvent       *CustomEvent      `json:"custom_event,omitempty"`
}

// Broadcast states (broadcast_state_update).
const (
	BroadcastStarted = 1
	BroadcastEnded   = 2
)
