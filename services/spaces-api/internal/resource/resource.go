// Package resource holds the shapes spaces-api shows to others, apart from the rows it
// stores: the REST resources (Mux's Space and Broadcast) and the data of space.* and
// space.broadcast.* events. The REST and event shapes render the same JSON today; they are
// separate types so that a column added to the row reaches neither by accident, and the event
// payload can never grow a field the API keeps to itself.
package resource

import (
	"strconv"
	"time"

	"github.com/spacecast/spacecast/services/spaces-api/internal/store"
)

// Space is a space as /video/v1/spaces shows it: Mux's Space (id, created_at as a string of
// Unix seconds, type, status, passthrough, broadcasts, active_session_id while active).
type Space struct {
	ID              string      `json:"id"`
	CreatedAt       string      `json:"created_at"`
	Type            string      `json:"type"`
	Status          string      `json:"status"`
	Passthrough     *string     `json:"passthrough,omitempty"`
	Broadcasts      []Broadcast `json:"broadcasts"`
	ActiveSessionID *string     `json:"active_session_id,omitempty"`
}

// Broadcast is Mux's Broadcast: id, passthrough, status (idle|active), layout,
// live_stream_id, background, resolution.
type Broadcast struct {
	ID           string  `json:"id"`
	Passthrough  *string `json:"passthrough,omitempty"`
	Status       string  `json:"status"`
	Layout       string  `json:"layout"`
	LiveStreamID string  `json:"live_stream_id"`
	Background   *string `json:"background,omitempty"`
	Resolution   string  `json:"resolution"`
}

// NewBroadcast is b's REST resource.
func NewBroadcast(b store.BroadcastRow) Broadcast {
	return Broadcast{ID: b.ID, Passthrough: b.Passthrough, Status: b.Status, Layout: b.Layout, LiveStreamID: b.LiveStreamID,
		Background: b.Background, Resolution: b.Resolution}
}

// NewSpace is r's REST resource with its broadcasts.
func NewSpace(r store.Row, bs []store.BroadcastRow) Space {
	out := make([]Broadcast, len(bs))
	for i, b := range bs {
		out[i] = NewBroadcast(b)
	}
	return Space{ID: r.ID, CreatedAt: secs(r.CreatedNS), Type: r.Type, Status: r.Status, Passthrough: r.Passthrough,
		Broadcasts: out, ActiveSessionID: r.ActiveSessionID}
}

// NewSpaces renders a page of rows with their broadcasts (by space id).
func NewSpaces(rows []store.Row, bs map[string][]store.BroadcastRow) []Space {
	out := make([]Space, len(rows))
	for i, r := range rows {
		out[i] = NewSpace(r, bs[r.ID])
	}
	return out
}

// SpaceEvent is the data of space.created, space.updated, space.active, space.idle and
// space.deleted (and of their video.space.* webhooks): the space as the REST API showed it
// at that moment.
type SpaceEvent struct {
	ID              string           `json:"id"`
	CreatedAt       string           `json:"created_at"`
	Type            string           `json:"type"`
	Status          string           `json:"status"`
	Passthrough     *string          `json:"passthrough,omitempty"`
	Broadcasts      []BroadcastEvent `json:"broadcasts"`
	ActiveSessionID *string          `json:"active_session_id,omitempty"`
}

// BroadcastEvent is the data of space.broadcast.created, .active, .idle and .deleted (and of
// their video.space.broadcast.* webhooks): the broadcast as the REST API shows it. Inside a
// SpaceEvent it has the same members as the REST resource; as a broadcast event's data it
// also names its space (space_id), which Mux's Broadcast leaves to the URL.
type BroadcastEvent struct {
	ID           string  `json:"id"`
	Passthrough  *string `json:"passthrough,omitempty"`
	Status       string  `json:"status"`
	Layout       string  `json:"layout"`
	LiveStreamID string  `json:"live_stream_id"`
	Background   *string `json:"background,omitempty"`
	Resolution   string  `json:"resolution"`
	SpaceID      string  `json:"space_id,omitempty"`
}

func newBroadcastEvent(b store.BroadcastRow) BroadcastEvent {
	return BroadcastEvent{ID: b.ID, Passthrough: b.Passthrough, Status: b.Status, Layout: b.Layout, LiveStreamID: b.LiveStreamID,
		Background: b.Background, Resolution: b.Resolution}
}

// NewSpaceEvent is r's event data with its broadcasts.
func NewSpaceEvent(r store.Row, bs []store.BroadcastRow) any {
	out := make([]BroadcastEvent, len(bs))
	for i, b := range bs {
		out[i] = newBroadcastEvent(b)
	}
	return SpaceEvent{ID: r.ID, CreatedAt: secs(r.CreatedNS), Type: r.Type, Status: r.Status, Passthrough: r.Passthrough,
		Broadcasts: out, ActiveSessionID: r.ActiveSessionID}
}

// NewBroadcastEventData is b's space.broadcast.* event data (with space_id).
func NewBroadcastEventData(b store.BroadcastRow) any {
	ev := newBroadcastEvent(b)
	ev.SpaceID = b.SpaceID
	return ev
}

// Renderers are the store's event renderers.
var Renderers = store.Renderers{Space: NewSpaceEvent, Broadcast: NewBroadcastEventData}

func secs(ns int64) string { return strconv.FormatInt(ns/int64(time.Second), 10) }
