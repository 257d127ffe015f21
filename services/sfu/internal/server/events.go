package server

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/sqldb"
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
	// older events arriving late (events of one space come from several nodes' outboxes).
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

// pending is one event to write.
type pending struct {
	typ  string
	p    registry.Participant
	data any
}

// emitter writes events to the outbox and wakes the relay.
type emitter struct {
	db    *sqldb.DB
	relay *outbox.Relay
}

func (e *emitter) emit(ctx context.Context, evs ...pending) error {
	if len(evs) == 0 {
		return nil
	}
	envs := make([]events.Envelope, len(evs))
	for i, ev := range evs {
		env, err := events.New(Source, ev.typ, ev.p.SpaceID, ev.p.EnvironmentID, ev.data)
		if err != nil {
			return err
		}
		envs[i] = env
	}
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, env := range envs {
			if err := outbox.Add(ctx, tx, events.TopicRTC, env); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	e.relay.Notify()
	return nil
}
