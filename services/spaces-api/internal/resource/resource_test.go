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
	pt, sess := "team-42", "sess1"
	created := time.Unix(1653365403, 999).UnixNano()
	tests := []struct {
		name string
		row  store.Row
		want string
	}{
		{"idle", store.Row{ID: "s1", EnvironmentID: "envA", Type: "server", Status: "idle", CreatedNS: created},
			`{"id":"s1","created_at":"1653365403","type":"server","status":"idle","broadcasts":[]}`},
		{"active with passthrough", store.Row{ID: "s2", EnvironmentID: "envA", Type: "server", Status: "active", Passthrough: &pt,
			ActiveSessionID: &sess, CreatedNS: created},
			`{"id":"s2","created_at":"1653365403","type":"server","status":"active","passthrough":"team-42","broadcasts":[],"active_session_id":"sess1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, err := json.Marshal(resource.NewSpace(tt.row))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := json.Marshal(resource.NewSpaceEvent(tt.row))
			if err != nil {
				t.Fatal(err)
			}
			if string(api) != tt.want || string(ev) != tt.want {
				t.Fatalf("resource %s\nevent    %s\nwant     %s", api, ev, tt.want)
			}
		})
	}
}
