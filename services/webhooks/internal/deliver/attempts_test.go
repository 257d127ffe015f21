package deliver

import (
	"encoding/json"
	"testing"

	"github.com/spacecast/spacecast/services/webhooks/internal/store"
)

// TestWithAttempts: the body a receiver gets is the stored payload with "attempts" added,
// whether the payload is appended to (the dispatcher's objects) or rebuilt (any other object).
func TestWithAttempts(t *testing.T) {
	two := []store.Attempt{{At: "2026-12-02T10:00:00Z", StatusCode: 500}, {At: "2026-12-02T10:00:05Z", StatusCode: 0}}
	for _, tc := range []struct {
		name     string
		payload  string
		attempts []store.Attempt
		want     int // attempts in the body; -1: an error
	}{
		{"first attempt", `{"type":"video.space.created","id":"e1","data":{"n":1}}`, nil, 0},
		{"retry", `{"type":"video.space.created","id":"e1","data":{"n":1}}`, two, 2},
		{"trailing space", "{\"id\":\"e1\"}\n ", two, 2},
		{"empty object", `{}`, two, 2},
		{"attempts already there", `{"id":"e1","attempts":[{"created_at":"x"}]}`, two, 2},
		{"not an object", `[1,2]`, nil, -1},
		{"not JSON", `{"id":`, nil, -1},
		{"null", `null`, nil, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := withAttempts(json.RawMessage(tc.payload), tc.attempts, "https://r.example/hook")
			if tc.want < 0 {
				if err == nil {
					t.Fatalf("withAttempts(%s) = %s, want an error", tc.payload, raw)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				ID       string           `json:"id"`
				Attempts []attemptSummary `json:"attempts"`
			}
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("body %s is not JSON: %v", raw, err)
			}
			if body.Attempts == nil || len(body.Attempts) != tc.want {
				t.Fatalf("body %s has attempts %v, want %d", raw, body.Attempts, tc.want)
			}
			for i, a := range body.Attempts {
				if a.CreatedAt != tc.attempts[i].At || a.StatusCode != tc.attempts[i].StatusCode || a.Address != "https://r.example/hook" {
					t.Fatalf("attempt %d = %+v", i, a)
				}
			}
			var all map[string]json.RawMessage
			_ = json.Unmarshal(raw, &all)
			var orig map[string]json.RawMessage
			_ = json.Unmarshal([]byte(tc.payload), &orig)
			for k, v := range orig {
				if k != "attempts" && string(all[k]) != string(v) {
					t.Fatalf("member %s = %s, want %s", k, all[k], v)
				}
			}
		})
	}
}
