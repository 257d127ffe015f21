package spacesapi_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/testenv"
)

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
