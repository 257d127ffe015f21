package spacesapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/testenv"
	spacesapi "github.com/spacecast/spacecast/services/spaces-api"
)

// liveStream publishes a livestream.created (or .deleted) event as the livestream service
// does and waits until spaces-api has recorded it.
func (e *env) liveStream(typ, id, envID string) {
	e.t.Helper()
	ev, err := events.New("spacecast/livestream", typ, id, envID, map[string]any{"id": id, "status": "idle"})
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := ev.Marshal()
	if err := e.prod.Publish(context.Background(), kafkabus.Message{Topic: events.TopicLivestreams, Key: []byte(id), Value: b}); err != nil {
		e.t.Fatal(err)
	}
	want := 0
	if typ == "livestream.deleted" {
		want = 1
	}
	testenv.Eventually(e.t, 10*time.Second, func() bool {
		var n int
		_ = e.db.QueryRow(`SELECT COUNT(*) FROM known_live_streams WHERE id = $1 AND deleted = $2`, id, want).Scan(&n)
		return n == 1
	}, "spaces-api never saw %s %s", typ, id)
}

// spaceEvents reads spacecast.spaces from the start with an independent client until n
// events about space (keyed by it) arrived.
func (e *env) spaceEvents(space string, n int) []events.Envelope {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(events.TopicSpaces), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var got []events.Envelope
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) != space {
				return
			}
			ev, err := events.Parse(r.Value)
			if err != nil {
				e.t.Errorf("bad envelope: %v", err)
				return
			}
			got = append(got, ev)
		})
	}
	return got
}

func (e *env) broadcastStatus(space, bid string) string {
	_, body := e.call(readerA, "GET", "/video/v1/spaces/"+space+"/broadcasts/"+bid, "")
	s, _ := data(body)["status"].(string)
	return s
}

// TestBroadcastLifecycle: create, read, start (only while the space is active), stop,
// delete (not while active), the space going idle stopping it, and the space.broadcast.*
// events on spacecast.spaces in order, keyed by the space, with the broadcast as data.
func TestBroadcastLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.liveStream("livestream.created", "lsA", "envA")
		_, body := e.call(writerA, "POST", "/video/v1/spaces", "{}")
		id := data(body)["id"].(string)
		bc := "/video/v1/spaces/" + id + "/broadcasts"
		st, body := e.call(writerA, "POST", bc, `{"live_stream_id":"lsA","passthrough":"show-1","layout":"active-speaker",`+
			`"background":"https://example.com/bg.png","resolution":"1280x720"}`)
		b := data(body)
		want := map[string]any{"id": b["id"], "passthrough": "show-1", "status": "idle", "layout": "active-speaker",
			"live_stream_id": "lsA", "background": "https://example.com/bg.png", "resolution": "1280x720"}
		if st != 201 || fmt.Sprint(b) != fmt.Sprint(want) || len(fmt.Sprint(b["id"])) < 16 {
			t.Fatalf("create = %d %v", st, body)
		}
		bid := b["id"].(string)
		if st, body := e.call(readerA, "GET", bc+"/"+bid, ""); st != 200 || fmt.Sprint(data(body)) != fmt.Sprint(want) {
			t.Fatalf("get = %d %v", st, body)
		}
		_, body = e.call(readerA, "GET", "/video/v1/spaces/"+id, "")
		if bs, _ := data(body)["broadcasts"].([]any); len(bs) != 1 || fmt.Sprint(bs[0]) != fmt.Sprint(want) {
			t.Fatalf("space broadcasts = %v", data(body)["broadcasts"])
		}
		_, body = e.call(readerA, "GET", "/video/v1/spaces", "")
		if l, _ := body["data"].([]any); len(l) != 1 || len(l[0].(map[string]any)["broadcasts"].([]any)) != 1 {
			t.Fatalf("list = %v", body)
		}

		if st, _ := e.call(writerA, "POST", bc+"/"+bid+"/start", ""); st != 409 {
			t.Fatalf("start while the space is idle = %d, want 409", st)
		}
		e.rtcEvent("participant.joined", id, "c1", 1, 1)
		testenv.Eventually(t, 10*time.Second, func() bool { s, _ := e.status(id); return s == "active" }, "space never became active")
		if st, body := e.call(writerA, "POST", bc+"/"+bid+"/start", ""); st != 200 || fmt.Sprint(body) != "map[data:map[]]" {
			t.Fatalf("start = %d %v", st, body)
		}
		if s := e.broadcastStatus(id, bid); s != "active" {
			t.Fatalf("after start: %s", s)
		}
		if st, _ := e.call(writerA, "POST", bc+"/"+bid+"/start", ""); st != 200 {
			t.Fatalf("second start = %d, want 200 (no change)", st)
		}
		if st, _ := e.call(writerA, "DELETE", bc+"/"+bid, ""); st != 409 {
			t.Fatalf("delete while active = %d, want 409", st)
		}
		if st, body := e.call(writerA, "POST", bc+"/"+bid+"/stop", ""); st != 200 || fmt.Sprint(body) != "map[data:map[]]" {
			t.Fatalf("stop = %d %v", st, body)
		}
		if s := e.broadcastStatus(id, bid); s != "idle" {
			t.Fatalf("after stop: %s", s)
		}
		if st, _ := e.call(writerA, "POST", bc+"/"+bid+"/stop", ""); st != 200 {
			t.Fatalf("second stop = %d, want 200 (no change)", st)
		}
		if st, _ := e.call(writerA, "POST", bc+"/"+bid+"/start", ""); st != 200 {
			t.Fatalf("restart = %d", st)
		}
		// Everyone leaves: the space goes idle and stops its broadcast.
		e.rtcEvent("participant.left", id, "c1", 0, 2)
		testenv.Eventually(t, 10*time.Second, func() bool { return e.broadcastStatus(id, bid) == "idle" }, "space idle did not stop the broadcast")
		if s, _ := e.status(id); s != "idle" {
			t.Fatalf("space %s", s)
		}
		if st, _ := e.call(writerA, "DELETE", bc+"/"+bid, ""); st != 204 {
			t.Fatalf("delete = %d", st)
		}
		if st, _ := e.call(readerA, "GET", bc+"/"+bid, ""); st != 404 {
			t.Fatalf("get deleted = %d", st)
		}

		wantTypes := []string{"space.created", "space.broadcast.created", "space.active", "space.broadcast.active", "space.broadcast.idle",
			"space.broadcast.active", "space.broadcast.idle", "space.idle", "space.broadcast.deleted"}
		got := e.spaceEvents(id, len(wantTypes))
		var types []string
		for _, ev := range got {
			types = append(types, ev.Type)
			if !strings.HasPrefix(ev.Type, "space.broadcast.") {
				continue
			}
			var d map[string]any
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			status := "idle"
			if ev.Type == "space.broadcast.active" {
				status = "active"
			}
			if ev.Subject != bid || ev.Environment != "envA" || d["id"] != bid || d["space_id"] != id || d["live_stream_id"] != "lsA" ||
				d["status"] != status || d["layout"] != "active-speaker" || d["resolution"] != "1280x720" || d["stream_key"] != nil {
				t.Errorf("%s: subject %s env %s data %v", ev.Type, ev.Subject, ev.Environment, d)
			}
		}
		if strings.Join(types, ",") != strings.Join(wantTypes, ",") {
			t.Fatalf("events = %v, want %v", types, wantTypes)
		}
		// The space.idle event shows the broadcast already idle.
		var idle struct {
			Broadcasts []map[string]any `json:"broadcasts"`
		}
		_ = json.Unmarshal(got[7].Data, &idle)
		if len(idle.Broadcasts) != 1 || idle.Broadcasts[0]["status"] != "idle" {
			t.Fatalf("space.idle data broadcasts = %v", idle.Broadcasts)
		}
	})
}

// TestBroadcastAtSpaceCreate: a space created with a broadcast shows it, defaults filled in.
func TestBroadcastAtSpaceCreate(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	e.liveStream("livestream.created", "lsA", "envA")
	st, body := e.call(writerA, "POST", "/video/v1/spaces", `{"passthrough":"p","broadcasts":[{"live_stream_id":"lsA"}]}`)
	bs, _ := data(body)["broadcasts"].([]any)
	if st != 201 || len(bs) != 1 {
		t.Fatalf("create = %d %v", st, body)
	}
	b := bs[0].(map[string]any)
	if b["layout"] != "gallery" || b["resolution"] != "1920x1080" || b["status"] != "idle" || b["live_stream_id"] != "lsA" {
		t.Fatalf("broadcast = %v", b)
	}
	id := data(body)["id"].(string)
	got := e.spaceEvents(id, 2)
	if len(got) != 2 || got[0].Type != "space.created" || got[1].Type != "space.broadcast.created" {
		t.Fatalf("events %v", got)
	}
	var d struct {
		Broadcasts []map[string]any `json:"broadcasts"`
	}
	if err := json.Unmarshal(got[0].Data, &d); err != nil || len(d.Broadcasts) != 1 || d.Broadcasts[0]["id"] != b["id"] {
		t.Fatalf("space.created data %s", got[0].Data)
	}
	// Deleting the space deletes its broadcast (space.broadcast.deleted, then space.deleted).
	if st, _ := e.call(writerA, "DELETE", "/video/v1/spaces/"+id, ""); st != 204 {
		t.Fatalf("delete = %d", st)
	}
	got = e.spaceEvents(id, 4)
	if len(got) != 4 || got[2].Type != "space.broadcast.deleted" || got[3].Type != "space.deleted" || e.count("broadcasts") != 0 {
		t.Fatalf("events %v, %d broadcasts left", got, e.count("broadcasts"))
	}
}

// TestBroadcastBadInput: every refused call answers the documented error and writes nothing.
func TestBroadcastBadInput(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.liveStream("livestream.created", "lsA", "envA")
		e.liveStream("livestream.created", "lsB", "envB")
		e.liveStream("livestream.created", "lsGone", "envA")
		e.liveStream("livestream.deleted", "lsGone", "envA")
		_, body := e.call(writerA, "POST", "/video/v1/spaces", "{}")
		id := data(body)["id"].(string)
		_, body = e.call(writerA, "POST", "/video/v1/spaces", "{}")
		busy := data(body)["id"].(string)
		_, body = e.call(writerA, "POST", "/video/v1/spaces/"+busy+"/broadcasts", `{"live_stream_id":"lsA"}`)
		bid, _ := data(body)["id"].(string)
		if bid == "" {
			t.Fatalf("setup broadcast: %v", body)
		}
		// Another active space's active broadcast sending to lsA.
		_, body = e.call(writerA, "POST", "/video/v1/spaces", "{}")
		other := data(body)["id"].(string)
		_, body = e.call(writerA, "POST", "/video/v1/spaces/"+other+"/broadcasts", `{"live_stream_id":"lsA"}`)
		obid := data(body)["id"].(string)
		e.rtcEvent("participant.joined", other, "o1", 1, 1)
		e.rtcEvent("participant.joined", busy, "b1", 1, 1)
		testenv.Eventually(t, 10*time.Second, func() bool {
			s1, _ := e.status(other)
			s2, _ := e.status(busy)
			return s1 == "active" && s2 == "active"
		}, "spaces never became active")
		if st, _ := e.call(writerA, "POST", "/video/v1/spaces/"+other+"/broadcasts/"+obid+"/start", ""); st != 200 {
			t.Fatalf("start other = %d", st)
		}
		// An active space whose broadcast's live stream was deleted after the broadcast was made.
		e.liveStream("livestream.created", "lsLater", "envA")
		_, body = e.call(writerA, "POST", "/video/v1/spaces", `{"broadcasts":[{"live_stream_id":"lsLater"}]}`)
		orphan := data(body)["id"].(string)
		obc := "/video/v1/spaces/" + orphan + "/broadcasts/" + data(body)["broadcasts"].([]any)[0].(map[string]any)["id"].(string)
		e.liveStream("livestream.deleted", "lsLater", "envA")
		e.rtcEvent("participant.joined", orphan, "x1", 1, 1)
		testenv.Eventually(t, 10*time.Second, func() bool { s, _ := e.status(orphan); return s == "active" }, "space never became active")
		bc := "/video/v1/spaces/" + id + "/broadcasts"
		tables := []string{"spaces", "broadcasts", "spacecast_outbox"}
		before := map[string]int{}
		for _, tb := range tables {
			before[tb] = e.count(tb)
		}
		long := strings.Repeat("x", 256)
		tests := []struct {
			name               string
			c                  creds
			method, path, body string
			status             int
			kind, mentions     string
		}{
			{"unknown live stream", writerA, "POST", bc, `{"live_stream_id":"nope"}`, 400, "invalid_parameters", "live_stream_id"},
			{"other environment's live stream", writerA, "POST", bc, `{"live_stream_id":"lsB"}`, 400, "invalid_parameters", "live_stream_id"},
			{"deleted live stream", writerA, "POST", bc, `{"live_stream_id":"lsGone"}`, 400, "invalid_parameters", "live_stream_id"},
			{"missing live stream", writerA, "POST", bc, `{"layout":"gallery"}`, 400, "invalid_parameters", "live_stream_id is required"},
			{"empty body", writerA, "POST", bc, ``, 400, "invalid_parameters", "live_stream_id is required"},
			{"bad layout", writerA, "POST", bc, `{"live_stream_id":"lsA","layout":"grid"}`, 400, "invalid_parameters", "layout"},
			{"bad resolution", writerA, "POST", bc, `{"live_stream_id":"lsA","resolution":"640x480"}`, 400, "invalid_parameters", "resolution"},
			{"resolution wrong type", writerA, "POST", bc, `{"live_stream_id":"lsA","resolution":1080}`, 400, "invalid_parameters", `"resolution"`},
			{"background not a URL", writerA, "POST", bc, `{"live_stream_id":"lsA","background":"bg.png"}`, 400, "invalid_parameters", "background"},
			{"background file URL", writerA, "POST", bc, `{"live_stream_id":"lsA","background":"file:///etc/passwd"}`, 400, "invalid_parameters", "background"},
			{"long passthrough", writerA, "POST", bc, `{"live_stream_id":"lsA","passthrough":"` + long + `"}`, 400, "invalid_parameters", "passthrough"},
			{"unknown field", writerA, "POST", bc, `{"live_stream_id":"lsA","name":"x"}`, 400, "invalid_parameters", `"name"`},
			{"malformed JSON", writerA, "POST", bc, `{"live_stream_id":`, 400, "invalid_parameters", "JSON"},
			{"second broadcast", writerA, "POST", "/video/v1/spaces/" + busy + "/broadcasts", `{"live_stream_id":"lsA"}`, 409, "conflict", "already has a broadcast"},
			{"two at space create", writerA, "POST", "/video/v1/spaces", `{"broadcasts":[{"live_stream_id":"lsA"},{"live_stream_id":"lsA"}]}`, 400, "invalid_parameters", "at most one"},
			{"unknown live stream at space create", writerA, "POST", "/video/v1/spaces", `{"broadcasts":[{"live_stream_id":"lsB"}]}`, 400, "invalid_parameters", "live_stream_id"},
			{"bad layout at space create", writerA, "POST", "/video/v1/spaces", `{"broadcasts":[{"live_stream_id":"lsA","layout":"x"}]}`, 400, "invalid_parameters", "broadcasts[0].layout"},
			{"reader cannot create", readerA, "POST", bc, `{"live_stream_id":"lsA"}`, 403, "forbidden", "video:write"},
			{"reader cannot start", readerA, "POST", "/video/v1/spaces/" + busy + "/broadcasts/" + bid + "/start", "", 403, "forbidden", "video:write"},
			{"unknown space", writerA, "POST", "/video/v1/spaces/nope/broadcasts", `{"live_stream_id":"lsA"}`, 404, "not_found", "space not found"},
			{"other environment's space", writerB, "POST", bc, `{"live_stream_id":"lsB"}`, 404, "not_found", "space not found"},
			{"other environment's broadcast", writerB, "GET", "/video/v1/spaces/" + busy + "/broadcasts/" + bid, "", 404, "not_found", "space not found"},
			{"broadcast of another space", writerA, "GET", bc + "/" + bid, "", 404, "not_found", "broadcast not found"},
			{"unknown broadcast", writerA, "POST", bc + "/nope/start", "", 404, "not_found", "broadcast not found"},
			{"delete unknown broadcast", writerA, "DELETE", bc + "/nope", "", 404, "not_found", "broadcast not found"},
			{"start while the live stream takes another broadcast", writerA, "POST", "/video/v1/spaces/" + busy + "/broadcasts/" + bid + "/start", "", 409, "conflict", "another active broadcast"},
			{"start with a deleted live stream", writerA, "POST", obc + "/start", "", 409, "conflict", "live stream was deleted"},
			{"delete an active broadcast", writerA, "DELETE", "/video/v1/spaces/" + other + "/broadcasts/" + obid, "", 409, "conflict", "active"},
			{"delete the space of an active broadcast", writerA, "DELETE", "/video/v1/spaces/" + other, "", 409, "conflict", "active"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st, body := e.call(tt.c, tt.method, tt.path, tt.body)
				eb, _ := body["error"].(map[string]any)
				if st != tt.status || eb["type"] != tt.kind || !strings.Contains(fmt.Sprint(eb["messages"]), tt.mentions) {
					t.Fatalf("%d %v, want %d %s mentioning %q", st, body, tt.status, tt.kind, tt.mentions)
				}
			})
		}
		for _, tb := range tables {
			if n := e.count(tb); n != before[tb] {
				t.Errorf("a refused call changed %s: %d rows, was %d", tb, n, before[tb])
			}
		}
		// Start while idle: the space of id goes idle; its broadcast cannot start.
		_, body = e.call(writerA, "POST", bc, `{"live_stream_id":"lsA"}`)
		nbid := data(body)["id"].(string)
		n := e.count("spacecast_outbox")
		st, body := e.call(writerA, "POST", bc+"/"+nbid+"/start", "")
		if eb, _ := body["error"].(map[string]any); st != 409 || !strings.Contains(fmt.Sprint(eb["messages"]), "space is not active") {
			t.Fatalf("start while idle = %d %v", st, body)
		}
		if e.count("spacecast_outbox") != n || e.broadcastStatus(id, nbid) != "idle" {
			t.Fatal("start while idle changed something")
		}
	})
}

// TestInternalBroadcasts: the SFU reads a space's broadcasts (settings and status, never a
// stream key) with the internal secret.
func TestInternalBroadcasts(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	e.liveStream("livestream.created", "lsA", "envA")
	_, body := e.call(writerA, "POST", "/video/v1/spaces", `{"broadcasts":[{"live_stream_id":"lsA","layout":"crop","resolution":"720x720"}]}`)
	id := data(body)["id"].(string)
	bid := data(body)["broadcasts"].([]any)[0].(map[string]any)["id"].(string)
	list, err := e.svc.SpaceBroadcasts(context.Background(), id)
	if err != nil || len(list) != 1 || list[0] != (spacesapi.BroadcastInfo{ID: bid, SpaceID: id, EnvironmentID: "envA", LiveStreamID: "lsA",
		Status: "idle", Layout: "crop", Resolution: "720x720"}) {
		t.Fatalf("SpaceBroadcasts = %+v, %v", list, err)
	}
	if _, err := e.svc.SpaceBroadcasts(context.Background(), "nope"); !errors.Is(err, spacesapi.ErrSpaceNotFound) {
		t.Fatalf("unknown space: %v", err)
	}
	for _, tt := range []struct {
		path, secret string
		status       int
	}{
		{"/internal/v1/spaces/" + id + "/broadcasts", "internal", 200},
		{"/internal/v1/spaces/" + id + "/broadcasts", "", 401},
		{"/internal/v1/spaces/" + id + "/broadcasts", "wrong", 401},
		{"/internal/v1/spaces/nope/broadcasts", "internal", 404},
	} {
		req, _ := http.NewRequest("GET", e.url+tt.path, nil)
		if tt.secret != "" {
			req.Header.Set(auth.InternalAuthHeader, tt.secret)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			Data []spacesapi.BroadcastInfo `json:"data"`
		}
		_ = json.NewDecoder(res.Body).Decode(&b)
		res.Body.Close()
		if res.StatusCode != tt.status || (tt.status == 200 && (len(b.Data) != 1 || b.Data[0].ID != bid)) {
			t.Fatalf("%s (secret %q) = %d %+v, want %d", tt.path, tt.secret, res.StatusCode, b, tt.status)
		}
	}
}
