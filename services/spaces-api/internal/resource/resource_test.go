package resource_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/spacecast/spacecast/services/spaces-api/internal/resource"
	"github.com/spacecast/spacecast/services/spaces-api/internal/store"
)

// TestSpaceJSON: the REST resource and the event data of a row are Mux's Space, member for
// member, and the row's environment never shows.
func TestSpaceJSON(t *testing.T) {
	pt, sess, bg := "team-42", "sess1", "https://example.com/bg.png"
	created := time.Unix(1653365403, 999).UnixNano()
	tests := []struct {
		name string
		row  store.Row
		bcs  []store.BroadcastRow
		want string
	}{
		{"idle", store.Row{ID: "s1", EnvironmentID: "envA", Type: "server", Status: "idle", CreatedNS: created},
			nil, `{"id":"s1","created_at":"1653365403","type":"server","status":"idle","broadcasts":[]}`},
		{"active with passthrough", store.Row{ID: "s2", EnvironmentID: "envA", Type: "server", Status: "active", Passthrough: &pt,
			ActiveSessionID: &sess, CreatedNS: created}, nil,
			`{"id":"s2","created_at":"1653365403","type":"server","status":"active","passthrough":"team-42","broadcasts":[],"active_session_id":"sess1"}`},
		{"with a broadcast", store.Row{ID: "s3", EnvironmentID: "envA", Type: "server", Status: "idle", CreatedNS: created},
			[]store.BroadcastRow{{ID: "b1", SpaceID: "s3", EnvironmentID: "envA", LiveStreamID: "ls1", Status: "idle", Layout: "gallery",
				Resolution: "1280x720", Background: &bg, Passthrough: &pt, CreatedNS: created}},
			`{"id":"s3","created_at":"1653365403","type":"server","status":"idle","broadcasts":[{"id":"b1","passthrough":"team-42",` +
				`"status":"idle","layout":"gallery","live_stream_id":"ls1","background":"https://example.com/bg.png","resolution":"1280x720"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, err := json.Marshal(resource.NewSpace(tt.row, tt.bcs))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := json.Marshal(resource.NewSpaceEvent(tt.row, tt.bcs))
			if err != nil {
				t.Fatal(err)
			}
			if string(api) != tt.want || string(ev) != tt.want {
				t.Fatalf("resource %s\nevent    %s\nwant     %s", api, ev, tt.want)
			}
		})
	}
}

// TestBroadcastEventJSON: a broadcast event's data is Mux's Broadcast plus space_id, never the
// environment.
func TestBroadcastEventJSON(t *testing.T) {
	b := store.BroadcastRow{ID: "b1", SpaceID: "s1", EnvironmentID: "envA", LiveStreamID: "ls1", Status: "active", Layout: "crop",
		Resolution: "720x720", CreatedNS: 1}
	got, err := json.Marshal(resource.NewBroadcastEventData(b))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"b1","status":"active","layout":"crop","live_stream_id":"ls1","resolution":"720x720","space_id":"s1"}`
	if string(got) != want {
		t.Fatalf("event %s\nwant  %s", got, want)
	}
	api, _ := json.Marshal(resource.NewBroadcast(b))
	if string(api) != `{"id":"b1","status":"active","layout":"crop","live_stream_id":"ls1","resolution":"720x720"}` {
		t.Fatalf("resource %s", api)
	}
}
