package server

import (
	"strconv"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/services/sfu/internal/registry"
)

// Source is the CloudEvents source of every SFU event.
const Source = "spacecast/sfu"

// Event types on spacecast.rtc.
const (
	EventParticipantJoined = "participant.joined"
	EventParticipantLeft   = "participant.left"
	EventTrackPublished    = "track.published"
	EventTrackUnpublished  = "track.unpublished"
	// EventSpaceVacated says a space has nobody connected although no participant.left said
	// so (its participants' node died with Redis, or the events were lost): the
	// reconciliation emits it for spaces spaces-api still shows active.
	EventSpaceVacated = "space.vacated"
)

// ParticipantData is the data of participant.joined / participant.left.
type ParticipantData struct {
	SpaceID       string `json:"space_id"`
	ParticipantID string `json:"participant_id"`
	ConnectionID  string `json:"connection_id"`
	Role          string `json:"role"`
	NodeID        string `json:"node_id"`
	JoinedAt      string `json:"joined_at"`
	// SpaceParticipants is how many participants the space has (every node) right after
	// this join or leave, and SpaceSeq the space's sequence number of that change: it only
	// grows, so a consumer keeps the status of the highest SpaceSeq it saw and ignores
	// older events arriving late or again (events are published at least once).
	SpaceParticipants int   `json:"space_participants"`
	SpaceSeq          int64 `json:"space_seq"`
}

// VacatedData is the data of space.vacated.
type VacatedData struct {
	SpaceID           string `json:"space_id"`
	SpaceParticipants int    `json:"space_participants"` // always 0
	SpaceSeq          int64  `json:"space_seq"`
	NodeID            string `json:"node_id"` // the node that noticed
}

// TrackData is the data of track.published / track.unpublished.
type TrackData struct {
	SpaceID       string `json:"space_id"`
	ParticipantID string `json:"participant_id"`
	ConnectionID  string `json:"connection_id"`
	TrackID       string `json:"track_id"`
	Kind          string `json:"kind"`
	Source        string `json:"source"`
	Mid           string `json:"mid,omitempty"`
}

func participantData(p registry.Participant, occ registry.Occupancy) ParticipantData {
	return ParticipantData{SpaceID: p.SpaceID, ParticipantID: p.ParticipantID, ConnectionID: p.ConnectionID,
		Role: p.Role, NodeID: p.NodeID, JoinedAt: strconv.FormatInt(p.JoinedAt, 10),
		SpaceParticipants: occ.Participants, SpaceSeq: occ.Seq}
}

func trackData(p registry.Participant, t registry.Track) TrackData {
	return TrackData{SpaceID: p.SpaceID, ParticipantID: p.ParticipantID, ConnectionID: p.ConnectionID,
		TrackID: t.TrackID, Kind: t.Kind, Source: t.Source, Mid: t.Mid}
}

// newEvent builds an event's envelope for a registry script to append with its change.
// Occupancy events carry data built with the zero occupancy, which the script replaces.
func newEvent(typ string, p registry.Participant, data any, occupancy bool) (registry.Event, error) {
	env, err := events.New(Source, typ, p.SpaceID, p.EnvironmentID, data)
	if err != nil {
		return registry.Event{}, err
	}
	b, err := env.Marshal()
	if err != nil {
		return registry.Event{}, err
	}
	return registry.Event{JSON: b, Occupancy: occupancy}, nil
}

// participantEvent is participant.joined or participant.left of p (occupancy from the script).
func participantEvent(typ string, p registry.Participant) (registry.Event, error) {
	return newEvent(typ, p, participantData(p, registry.Occupancy{}), true)
}

// trackEvent is track.published or track.unpublished of p's track t.
func trackEvent(typ string, p registry.Participant, t registry.Track) (registry.Event, error) {
	return newEvent(typ, p, trackData(p, t), false)
}

// vacatedEvent is space.vacated of space, noticed by node (occupancy from the script).
func vacatedEvent(space SpaceInfo, node string) (registry.Event, error) {
	p := registry.Participant{SpaceID: space.ID, EnvironmentID: space.EnvironmentID}
	return newEvent(EventSpaceVacated, p, VacatedData{SpaceID: space.ID, NodeID: node}, true)
}
