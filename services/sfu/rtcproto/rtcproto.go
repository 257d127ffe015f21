// Package rtcproto is the JSON signaling protocol spoken on the SFU's WebSocket
// (docs/rtc-protocol.md). Every message is one JSON object with a "type" member; the other
// members depend on the type. The Go client and the server share these types.
package rtcproto

import "encoding/json"

// Path is the HTTP path of the signaling WebSocket.
const Path = "/rtc/v1/ws"

// Message types sent by clients.
const (
	TypeJoin      = "join"      // {token}
	TypeOffer     = "offer"     // {sdp, tracks}: negotiates the publish connection
	TypeAnswer    = "answer"    // {sdp}: answers the server's offer on the subscribe connection
	TypeCandidate = "candidate" // {target, candidate}
	TypeMute      = "mute"      // {track_id, muted}
	TypeLeave     = "leave"
	TypePing      = "ping"
)

// Message types sent by the server (plus offer, answer, candidate above).
const (
	TypeJoined            = "joined"
	TypeParticipantJoined = "participant_joined"
	TypeParticipantLeft   = "participant_left"
	TypeTrackPublished    = "track_published"
	TypeTrackUnpublished  = "track_unpublished"
	TypeTrackMuted        = "track_muted"
	TypePong              = "pong"
	TypeError             = "error"
)

// Candidate targets: which of the client's two peer connections a candidate belongs to.
const (
	TargetPublisher  = "publisher"  // the connection the client offers (its sending tracks)
	TargetSubscriber = "subscriber" // the connection the server offers (everyone else's tracks)
)

// Track kinds and sources.
const (
	KindAudio = "audio"
	KindVideo = "video"

	SourceMicrophone  = "microphone"
	SourceCamera      = "camera"
	SourceScreenshare = "screenshare"
)

// Error codes (the "code" of an error message; also the WebSocket close reason).
const (
	CodeBadMessage         = "bad_message"          // not JSON, unknown type, missing or bad field
	CodeUnexpectedMessage  = "unexpected_message"   // valid message at the wrong time
	CodeTokenMalformed     = "token_malformed"      // garbage, not a JWT
	CodeTokenAlgorithm     = "token_algorithm"      // not RS256 (none, HS256, ...)
	CodeTokenUnknownKey    = "token_unknown_key"    // kid missing or not a current signing key
	CodeTokenSignature     = "token_signature"      // tampered or signed by another key
	CodeTokenExpired       = "token_expired"        //
	CodeTokenNotYetValid   = "token_not_yet_valid"  // nbf or iat in the future
	CodeTokenAudience      = "token_audience"       // aud is not "rt"
	CodeTokenMissingExpiry = "token_missing_expiry" //
	CodeTokenClaims        = "token_claims"         // bad role, no sub, bad participant_id
	CodeTokenLifetime      = "token_lifetime"       // exp - iat longer than the node allows (default 30 days)
	CodeTokenKeyDeleted    = "token_key_deleted"    // sent to connected clients: the token's signing key was deleted
	CodeSpaceNotFound      = "space_not_found"      // sub is not a space of the key's environment
	CodeSpaceDeleted       = "space_deleted"        // the space was deleted (also sent to connected clients)
	CodeDuplicate          = "duplicate_participant"
	CodeWrongNode          = "wrong_node"          // the space is hosted by another node: see node_url
	CodePublishNotAllowed  = "publish_not_allowed" // a subscriber offered sending tracks
	CodeNegotiation        = "negotiation_failed"  // an SDP could not be applied
	CodeMediaFailed        = "media_failed"        // the media connection failed
	CodeJoinTimeout        = "join_timeout"        // no join message in time
	CodeServerShutdown     = "server_shutdown"
	CodeInternal           = "internal_error"
)

// Envelope is any message: Type plus the raw JSON for decoding into a concrete type.
type Envelope struct {
	Type string `json:"type"`
}

// Join is the first client message.
type Join struct {
	Type  string `json:"type"`
	Token string `json:"token"`
}

// ICEServer is one STUN/TURN server for the client's RTCPeerConnection configuration.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Track describes one published track.
type Track struct {
	TrackID string `json:"track_id"`
	Kind    string `json:"kind"`
	Source  string `json:"source"`
	Muted   bool   `json:"muted"`
	// Mid is the track's mid on the publisher's own publish connection (only in messages
	// to the publisher itself).
	Mid string `json:"mid,omitempty"`
}

// Participant is a connected participant and what it publishes.
type Participant struct {
	ParticipantID string  `json:"participant_id"`
	ConnectionID  string  `json:"connection_id"`
	Role          string  `json:"role"`
	JoinedAt      string  `json:"joined_at"`
	Tracks        []Track `json:"tracks"`
}

// Joined answers a successful join.
type Joined struct {
	Type          string        `json:"type"`
	SpaceID       string        `json:"space_id"`
	ParticipantID string        `json:"participant_id"`
	ConnectionID  string        `json:"connection_id"`
	Role          string        `json:"role"`
	NodeID        string        `json:"node_id"`
	Participants  []Participant `json:"participants"`
	ICEServers    []ICEServer   `json:"ice_servers"`
}

// TrackSource is what a publisher says about one of its sending tracks in an offer.
// Mid (preferred) or TrackID (the MediaStreamTrack id, the msid track id in the SDP) names it.
type TrackSource struct {
	Mid     string `json:"mid,omitempty"`
	TrackID string `json:"track_id,omitempty"`
	Source  string `json:"source"`
}

// SubscribedTrack maps a mid of the server's offer on the subscribe connection to the
// published track it carries.
type SubscribedTrack struct {
	Mid           string `json:"mid"`
	ParticipantID string `json:"participant_id"`
	ConnectionID  string `json:"connection_id"`
	TrackID       string `json:"track_id"`
	Kind          string `json:"kind"`
	Source        string `json:"source"`
}

// SDP is an offer or an answer. Tracks: in a client offer, the sources of its sending tracks;
// in a server offer, what each mid of the subscribe connection carries.
type SDP struct {
	Type    string            `json:"type"`
	SDP     string            `json:"sdp"`
	Sources []TrackSource     `json:"sources,omitempty"`
	Tracks  []SubscribedTrack `json:"tracks,omitempty"`
}

// ICECandidate is RTCIceCandidateInit.
type ICECandidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// Candidate is a trickled ICE candidate for one of the two connections.
type Candidate struct {
	Type      string       `json:"type"`
	Target    string       `json:"target"`
	Candidate ICECandidate `json:"candidate"`
}

// Mute marks a published track muted or unmuted (metadata for the others' UIs).
type Mute struct {
	Type    string `json:"type"`
	TrackID string `json:"track_id"`
	Muted   bool   `json:"muted"`
}

// Ping / Pong keep the socket alive; ID is echoed.
type Ping struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

// ParticipantEvent is participant_joined / participant_left.
type ParticipantEvent struct {
	Type        string      `json:"type"`
	Participant Participant `json:"participant"`
}

// TrackEvent is track_published / track_unpublished / track_muted.
type TrackEvent struct {
	Type          string `json:"type"`
	ParticipantID string `json:"participant_id"`
	ConnectionID  string `json:"connection_id"`
	Track         Track  `json:"track"`
}

// Error is sent before the server closes the socket.
type Error struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// NodeURL is set with CodeWrongNode: the signaling URL of the node hosting the space.
	NodeURL string `json:"node_url,omitempty"`
	NodeID  string `json:"node_id,omitempty"`
}

// Marshal encodes v, which must be one of the message types.
func Marshal(v any) ([]byte, error) { return json.Marshal(v) }
