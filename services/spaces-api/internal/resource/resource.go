// Package resource holds the shapes spaces-api shows to others, apart from the rows it
// stores: the REST resource (Mux's Space) and the data of space.* events. Both render the
// same JSON today; they are separate types so that a column added to the row reaches neither
// by accident, and the event payload can never grow a field the API keeps to itself.
package resource

import (
	"strconv"
	"time"

	"github.com/spacecast/spacecast/services/spaces-api/internal/store"
)

// Space is a space as /video/v1/spaces shows it: Mux's Space (id, created_at as a string of
// Unix seconds, type, status, passthrough, broadcasts, active_session_id while active).
type Space struct {
	ID          string  `json:"id"`
	CreatedAt   string  `json:"created_at"`
	Type        string  `json:"type"`
	Status      string  `json:"status"`
	Passthrough *string `json:"passthrough,omitempty"`
	// Broadcasts is always empty: this server does not support broadcasts yet.
	Broadcasts      []struct{} `json:"broadcasts"`
	ActiveSessionID *string    `json:"active_session_id,omitempty"`
}

// NewSpace is r's REST resource.
func NewSpace(r store.Row) Space {
	return Space{ID: r.ID, CreatedAt: secs(r.CreatedNS), Type: r.Type, Status: r.Status, Passthrough: r.Passthrough,
		Broadcasts: []struct{}{}, ActiveSessionID: r.ActiveSessionID}
}

// NewSpaces renders a page of rows.
func NewSpaces(rows []store.Row) []Space {
	out := make([]Space, len(rows))
	for i, r := range rows {
		out[i] = NewSpace(r)
	}
	return out
}

// SpaceEvent is the data of space.created, space.updated, space.active, space.idle and
// space.deleted (and of their video.space.* webhooks): the space as the REST API showed it
// at that moment.
type SpaceEvent struct {
	ID              string     `json:"id"`
	CreatedAt       string     `json:"created_at"`
	Type            string     `json:"type"`
	Status          string     `json:"status"`
	Passthrough     *string    `json:"passthrough,omitempty"`
	Broadcasts      []struct{} `json:"broadcasts"`
	ActiveSessionID *string    `json:"active_session_id,omitempty"`
}

// NewSpaceEvent is r's event data; its signature is a store.EventData.
func NewSpaceEvent(r store.Row) any {
	return SpaceEvent{ID: r.ID, CreatedAt: secs(r.CreatedNS), Type: r.Type, Status: r.Status, Passthrough: r.Passthrough,
		Broadcasts: []struct{}{}, ActiveSessionID: r.ActiveSessionID}
}

var _ store.EventData = NewSpaceEvent

func secs(ns int64) string { return strconv.FormatInt(ns/int64(time.Second), 10) }
