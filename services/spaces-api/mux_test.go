package spacesapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/testenv"
)

// TestBroadcastCallsNameTheFeature: Mux's broadcast calls (@mux/mux-node 7.3.5's
// Video.Spaces.Broadcasts) get an answer naming the missing feature, after the space's own
// 404 and the permission check, and write nothing.
func TestBroadcastCallsNameTheFeature(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	_, body := e.call(writerA, "POST", "/video/v1/spaces", "{}")
	id := data(body)["id"].(string)
	spaces, outboxRows := e.count("spaces"), e.count("spacecast_outbox")
	bc := "/video/v1/spaces/" + id + "/broadcasts"
	create := `{"live_stream_id":"ls","layout":"gallery","resolution":"1920x1080"}`
	tests := []struct {
		name               string
		c                  creds
		method, path, body string
		status             int
		mentions           string
	}{
		{"create", writerA, "POST", bc, create, 400, "does not support broadcasts"},
		{"create, empty body", writerA, "POST", bc, "", 400, "does not support broadcasts"},
		{"create on an unknown space", writerA, "POST", "/video/v1/spaces/nope/broadcasts", create, 404, "space not found"},
		{"create on another environment's space", writerB, "POST", bc, create, 404, "space not found"},
		{"reader cannot create", readerA, "POST", bc, create, 403, "video:write"},
		{"get", readerA, "GET", bc + "/b1", "", 404, "broadcast not found: this server does not support broadcasts"},
		{"delete", writerA, "DELETE", bc + "/b1", "", 404, "does not support broadcasts"},
		{"start", writerA, "POST", bc + "/b1/start", "", 404, "does not support broadcasts"},
		{"stop", writerA, "POST", bc + "/b1/stop", "", 404, "does not support broadcasts"},
		{"get on another environment's space", writerB, "GET", bc + "/b1", "", 404, "space not found"},
		{"start on an unknown space", writerA, "POST", "/video/v1/spaces/nope/broadcasts/b1/start", "", 404, "space not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := e.call(tt.c, tt.method, tt.path, tt.body)
			eb, _ := body["error"].(map[string]any)
			if st != tt.status || !strings.Contains(fmt.Sprint(eb["messages"]), tt.mentions) {
				t.Fatalf("%d %v, want %d mentioning %q", st, body, tt.status, tt.mentions)
			}
		})
	}
	if e.count("spaces") != spaces || e.count("spacecast_outbox") != outboxRows {
		t.Fatal("a broadcast call wrote something")
	}
}

// TestEventDataIsTheRESTResource: the data of every space.* event is the space exactly as the
// REST API showed it at that moment (same members, same values), so consumers of
// spacecast.spaces and of video.space.* webhooks read Mux's Space.
func TestEventDataIsTheRESTResource(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	_, body := e.call(writerA, "POST", "/video/v1/spaces", `{"passthrough":"team-42"}`)
	want := map[string]map[string]any{"space.created": data(body)}
	id := data(body)["id"].(string)
	_, body = e.call(writerA, "PATCH", "/video/v1/spaces/"+id, `{"passthrough":"team-43"}`)
	want["space.updated"] = data(body)
	e.rtcEvent("participant.joined", id, "c1", 1, 1)
	testenv.Eventually(t, 10*time.Second, func() bool { s, _ := e.status(id); return s == "active" }, "space never became active")
	_, body = e.call(readerA, "GET", "/video/v1/spaces/"+id, "")
	want["space.active"] = data(body)
	e.rtcEvent("participant.left", id, "c1", 0, 2)
	testenv.Eventually(t, 10*time.Second, func() bool { s, _ := e.status(id); return s == "idle" }, "space never went idle")
	_, body = e.call(readerA, "GET", "/video/v1/spaces/"+id, "")
	want["space.idle"], want["space.deleted"] = data(body), data(body)
	if st, _ := e.call(writerA, "DELETE", "/video/v1/spaces/"+id, ""); st != 204 {
		t.Fatalf("delete = %d", st)
	}
	if want["space.active"]["active_session_id"] == nil || want["space.idle"]["active_session_id"] != nil {
		t.Fatalf("session ids: active %v, idle %v", want["space.active"], want["space.idle"])
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(events.TopicSpaces), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]map[string]any{}
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			ev, err := events.Parse(r.Value)
			if err != nil || ev.Subject != id {
				return
			}
			var d map[string]any
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Errorf("%s data %s: %v", ev.Type, ev.Data, err)
			}
			got[ev.Type] = d
		})
	}
	for typ, w := range want {
		if !reflect.DeepEqual(got[typ], w) {
			t.Errorf("%s data = %v, want the REST resource %v", typ, got[typ], w)
		}
	}
}
