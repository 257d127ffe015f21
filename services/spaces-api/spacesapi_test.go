package spacesapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/libs/testenv"
	spacesapi "github.com/spacecast/spacecast/services/spaces-api"
)

// tokens is an in-memory TokenLookup: the keys service is tested in its own module.
type tokens map[string]auth.TokenRecord

func (m tokens) LookupToken(_ context.Context, id string) (auth.TokenRecord, error) {
	if r, ok := m[id]; ok {
		return r, nil
	}
	return auth.TokenRecord{}, auth.ErrTokenNotFound
}

type creds struct{ id, secret string }

var (
	writerA = creds{"writer-a", "secret-a"}
	readerA = creds{"reader-a", "secret-r"}
	writerB = creds{"writer-b", "secret-b"}
)

type env struct {
	t       *testing.T
	url     string
	db      *sqldb.DB
	brokers []string
	prod    *kafkabus.Producer
	svc     *spacesapi.Service
}

func setup(t *testing.T, b testenv.SQLBackend) *env {
	t.Helper()
	return start(t, testenv.OpenSQL(t, b), testenv.Kafka(t))
}

// start runs a service on db and brokers: a second call with the same ones is a second replica.
func start(t *testing.T, db *sqldb.DB, brokers []string) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	prod, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(c creds, env string, perms ...string) auth.TokenRecord {
		return auth.TokenRecord{ID: c.id, EnvironmentID: env, SecretHash: auth.HashSecret(c.secret), Permissions: perms}
	}
	authn, err := auth.NewVerifier(tokens{
		writerA.id: rec(writerA, "envA", auth.VideoRead, auth.VideoWrite),
		readerA.id: rec(readerA, "envA", auth.VideoRead),
		writerB.id: rec(writerB, "envB", auth.VideoRead, auth.VideoWrite),
	}, auth.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log := testenv.Logger(t)
	svc, err := spacesapi.New(ctx, spacesapi.Config{ConsumerGroup: "spaces-test", InternalSecret: "internal"},
		spacesapi.Deps{Logger: log, DB: db, Publisher: prod, Brokers: brokers, Auth: authn})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = svc.Run(ctx) }()
	e := httpapi.NewServer(httpapi.Options{Logger: log})
	svc.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(func() { srv.Close(); cancel(); wg.Wait(); prod.Close() })
	return &env{t: t, url: srv.URL, db: db, brokers: brokers, prod: prod, svc: svc}
}

func (e *env) call(c creds, method, path, body string) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	if c.id != "" {
		req.SetBasicAuth(c.id, c.secret)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			e.t.Fatalf("non-JSON body %q", raw)
		}
	}
	return res.StatusCode, out
}

func data(m map[string]any) map[string]any { d, _ := m["data"].(map[string]any); return d }

func (e *env) count(table string) int {
	var n int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, setup(t, b)) })
	}
}

func TestSpacesAPIShape(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		st, body := e.call(writerA, "POST", "/video/v1/spaces", "{}")
		sp := data(body)
		if st != 201 || sp["type"] != "server" || sp["status"] != "idle" || sp["active_session_id"] != nil {
			t.Fatalf("create = %d %v", st, body)
		}
		if b, ok := sp["broadcasts"].([]any); !ok || len(b) != 0 {
			t.Fatalf("broadcasts = %v", sp["broadcasts"])
		}
		if ca, ok := sp["created_at"].(string); !ok || len(ca) < 10 {
			t.Fatalf("created_at = %v", sp["created_at"])
		}
		id := sp["id"].(string)
		st, body = e.call(writerA, "POST", "/video/v1/spaces", `{"type":"server","passthrough":"team-42"}`)
		if st != 201 || data(body)["passthrough"] != "team-42" {
			t.Fatalf("create with passthrough = %d %v", st, body)
		}
		second := data(body)["id"].(string)
		st, body = e.call(readerA, "GET", "/video/v1/spaces", "")
		list, _ := body["data"].([]any)
		if st != 200 || len(list) != 2 || list[0].(map[string]any)["id"] != second {
			t.Fatalf("list (newest first) = %d %v", st, body)
		}
		st, body = e.call(readerA, "GET", "/video/v1/spaces?limit=1&page=2", "")
		if list, _ := body["data"].([]any); st != 200 || len(list) != 1 || list[0].(map[string]any)["id"] != id {
			t.Fatalf("page 2 = %d %v", st, body)
		}
		if st, body := e.call(readerA, "GET", "/video/v1/spaces/"+id, ""); st != 200 || data(body)["id"] != id {
			t.Fatalf("get = %d %v", st, body)
		}
		if st, body := e.call(writerA, "PATCH", "/video/v1/spaces/"+id, `{"passthrough":"x"}`); st != 200 || data(body)["passthrough"] != "x" {
			t.Fatalf("patch = %d %v", st, body)
		}
		if st, _ := e.call(writerA, "DELETE", "/video/v1/spaces/"+id, ""); st != 204 {
			t.Fatalf("delete = %d", st)
		}
		if st, _ := e.call(writerA, "DELETE", "/video/v1/spaces/"+id, ""); st != 404 {
			t.Fatalf("second delete = %d", st)
		}
		if st, _ := e.call(readerA, "GET", "/video/v1/spaces/"+id, ""); st != 404 {
			t.Fatalf("get deleted = %d", st)
		}
	})
}

func TestSpacesBadInputAndIsolation(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		_, body := e.call(writerA, "POST", "/video/v1/spaces", "{}")
		id := data(body)["id"].(string)
		spaces, outboxRows := e.count("spaces"), e.count("spacecast_outbox")
		long := strings.Repeat("x", 256)
		tests := []struct {
			name               string
			c                  creds
			method, path, body string
			status             int
			mentions           string
		}{
			{"no credentials", creds{}, "POST", "/video/v1/spaces", "{}", 401, "Basic"},
			{"wrong secret", creds{writerA.id, "bad"}, "POST", "/video/v1/spaces", "{}", 401, "invalid"},
			{"reader cannot write", readerA, "POST", "/video/v1/spaces", "{}", 403, "video:write"},
			{"malformed", writerA, "POST", "/video/v1/spaces", `{"passthrough"`, 400, "JSON"},
			{"unknown field", writerA, "POST", "/video/v1/spaces", `{"name":"x"}`, 400, `"name"`},
			{"wrong type", writerA, "POST", "/video/v1/spaces", `{"passthrough":7}`, 400, `"passthrough"`},
			{"bad type", writerA, "POST", "/video/v1/spaces", `{"type":"peer"}`, 400, "type"},
			{"long passthrough", writerA, "POST", "/video/v1/spaces", `{"passthrough":"` + long + `"}`, 400, "passthrough"},
			{"broadcast of an unknown live stream", writerA, "POST", "/video/v1/spaces", `{"broadcasts":[{"live_stream_id":"x"}]}`, 400, "live_stream_id"},
			{"broadcast without live stream", writerA, "POST", "/video/v1/spaces", `{"broadcasts":[{}]}`, 400, "broadcasts[0].live_stream_id"},
			{"broadcast with unknown field", writerA, "POST", "/video/v1/spaces", `{"broadcasts":[{"live_stream_id":"x","colour":1}]}`, 400, `"colour"`},
			{"array body", writerA, "POST", "/video/v1/spaces", `[]`, 400, "object"},
			{"limit", readerA, "GET", "/video/v1/spaces?limit=0", "", 400, "limit"},
			{"page", readerA, "GET", "/video/v1/spaces?page=abc", "", 400, "page"},
			{"other env get", writerB, "GET", "/video/v1/spaces/" + id, "", 404, "space not found"},
			{"other env delete", writerB, "DELETE", "/video/v1/spaces/" + id, "", 404, "space not found"},
			{"other env patch", writerB, "PATCH", "/video/v1/spaces/" + id, `{"passthrough":"x"}`, 404, "space not found"},
			{"patch without field", writerA, "PATCH", "/video/v1/spaces/" + id, `{}`, 400, "passthrough"},
			{"unknown id", writerA, "GET", "/video/v1/spaces/nope", "", 404, "space not found"},
			{"internal without secret", creds{}, "GET", "/internal/v1/spaces/" + id, "", 401, "internal"},
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
		if st, body := e.call(writerB, "GET", "/video/v1/spaces", ""); st != 200 || len(body["data"].([]any)) != 0 {
			t.Fatalf("env B sees env A's spaces: %v", body)
		}
		if e.count("spaces") != spaces || e.count("spacecast_outbox") != outboxRows {
			t.Fatal("a rejected request wrote something")
		}
	})
}

// rtcEvent publishes a participant event as the SFU would: the space's participants (every
// node) right after the change and the space's sequence number of that change.
func (e *env) rtcEvent(typ, space, conn string, participants int, seq int64) events.Envelope {
	e.t.Helper()
	ev, err := events.New("spacecast/sfu", typ, space, "envA", map[string]any{
		"space_id": space, "participant_id": "p-" + conn, "connection_id": conn, "role": "publisher", "node_id": "n1", "joined_at": "1",
		"space_participants": participants, "space_seq": seq})
	if err != nil {
		e.t.Fatal(err)
	}
	e.publish(ev)
	return ev
}

func (e *env) publish(ev events.Envelope) {
	b, _ := ev.Marshal()
	if err := e.prod.Publish(context.Background(), kafkabus.Message{Topic: events.TopicRTC, Key: []byte(ev.Subject), Value: b}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) status(id string) (string, string) {
	_, body := e.call(readerA, "GET", "/video/v1/spaces/"+id, "")
	s, _ := data(body)["status"].(string)
	sess, _ := data(body)["active_session_id"].(string)
	return s, sess
}

func TestStatusFollowsParticipants(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		_, body := e.call(writerA, "POST", "/video/v1/spaces", "{}")
		id := data(body)["id"].(string)

		join1 := e.rtcEvent("participant.joined", id, "c1", 1, 10)
		testenv.Eventually(t, 10*time.Second, func() bool { s, _ := e.status(id); return s == "active" }, "space never became active")
		_, sess1 := e.status(id)
		if sess1 == "" {
			t.Fatal("active space without active_session_id")
		}
		if st, _ := e.call(writerA, "DELETE", "/video/v1/spaces/"+id, ""); st != 409 {
			t.Fatalf("deleting an active space = %d, want 409", st)
		}
		e.publish(join1) // a redelivered event changes nothing
		e.rtcEvent("participant.joined", id, "c2", 2, 11)
		e.rtcEvent("participant.left", id, "c1", 1, 12)
		e.rtcEvent("participant.left", id, "c9", 0, 9)    // an older report arriving late is ignored
		e.rtcEvent("track.published", id, "c2", 0, 13)    // other rtc events are ignored
		e.rtcEvent("participant.left", id, "c1", 0, 0)    // an event without a sequence is skipped
		e.rtcEvent("participant.joined", id, "c3", 2, 14) // c3 joins...
		e.rtcEvent("participant.left", id, "c3", 1, 15)   // ...and leaves: c2 is still there
		time.Sleep(300 * time.Millisecond)
		if s, sess := e.status(id); s != "active" || sess != sess1 {
			t.Fatalf("with c2 still there: %s %s", s, sess)
		}
		// c2's node died: the sweep's participant.left says nobody is left.
		e.rtcEvent("participant.left", id, "c2", 0, 16)
		testenv.Eventually(t, 10*time.Second, func() bool { s, _ := e.status(id); return s == "idle" }, "space never became idle")
		if _, sess := e.status(id); sess != "" {
			t.Fatalf("idle space keeps active_session_id %q", sess)
		}
		e.rtcEvent("participant.joined", id, "c4", 1, 17)
		testenv.Eventually(t, 10*time.Second, func() bool { s, _ := e.status(id); return s == "active" }, "space never became active again")
		if _, sess := e.status(id); sess == sess1 || sess == "" {
			t.Fatalf("second session reuses id %q", sess)
		}

		// Events on spacecast.spaces, read with an independent Kafka client, keyed by space id, in order.
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(events.TopicSpaces), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		want := []string{"space.created", "space.active", "space.idle", "space.active", "space.idle"}
		// The reconciliation's report: nobody is connected (the node died with Redis).
		e.rtcEvent("space.vacated", id, "", 0, 18)
		testenv.Eventually(t, 10*time.Second, func() bool { s, _ := e.status(id); return s == "idle" }, "space.vacated did not idle the space")
		var got []string
		deadline := time.Now().Add(10 * time.Second)
		for len(got) < len(want) && time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			fs := cl.PollFetches(ctx)
			cancel()
			fs.EachRecord(func(r *kgo.Record) {
				if string(r.Key) != id {
					t.Errorf("record key %q, want space id", r.Key)
				}
				ev, err := events.Parse(r.Value)
				if err != nil {
					t.Errorf("bad envelope: %v", err)
					return
				}
				if ev.Environment != "envA" || ev.Subject != id {
					t.Errorf("envelope %+v", ev)
				}
				got = append(got, ev.Type)
			})
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("events = %v, want %v", got, want)
		}
	})
}

func TestLookup(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	_, body := e.call(writerA, "POST", "/video/v1/spaces", "{}")
	id := data(body)["id"].(string)
	info, err := e.svc.LookupSpace(context.Background(), id)
	if err != nil || info.EnvironmentID != "envA" || info.Status != "idle" {
		t.Fatalf("lookup = %+v, %v", info, err)
	}
	h, _ := spacesapi.NewHTTPLookup(e.url, "internal")
	if info2, err := h.LookupSpace(context.Background(), id); err != nil || info2 != info {
		t.Fatalf("http lookup = %+v, %v", info2, err)
	}
	if _, err := h.LookupSpace(context.Background(), "nope"); !errors.Is(err, spacesapi.ErrSpaceNotFound) {
		t.Fatalf("missing = %v", err)
	}
	if _, err := e.svc.LookupSpace(context.Background(), "nope"); !errors.Is(err, spacesapi.ErrSpaceNotFound) {
		t.Fatalf("missing = %v", err)
	}
}

// A stranded connection (its node died and nobody reported its leave) no longer pins the
// space: the status follows the SFU's count, so the next join and leave idle it. Before, the
// store counted connections itself and the space stayed active for good.
func TestStrandedConnectionDoesNotPinTheSpace(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		_, body := e.call(writerA, "POST", "/video/v1/spaces", "{}")
		id := data(body)["id"].(string)
		e.rtcEvent("participant.joined", id, "stranded", 1, 100) // its participant.left never comes
		testenv.Eventually(t, 10*time.Second, func() bool { s, _ := e.status(id); return s == "active" }, "space never became active")
		// Redis lost the stranded participant (dev mode restart): a new participant is the first.
		e.rtcEvent("participant.joined", id, "new", 1, 200)
		e.rtcEvent("participant.left", id, "new", 0, 201)
		testenv.Eventually(t, 10*time.Second, func() bool { s, _ := e.status(id); return s == "idle" }, "the last leave did not idle the space")
		if st, _ := e.call(writerA, "DELETE", "/video/v1/spaces/"+id, ""); st != 204 {
			t.Fatalf("delete after the last leave = %d, want 204", st)
		}
	})
}

// The internal list of active spaces pages by id and needs the internal secret.
func TestActiveSpaces(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	var active []string
	for i := range 5 {
		_, body := e.call(writerA, "POST", "/video/v1/spaces", "{}")
		id := data(body)["id"].(string)
		if i%2 == 0 {
			e.rtcEvent("participant.joined", id, "c", 1, 1)
			active = append(active, id)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		l, err := e.svc.ActiveSpaces(context.Background(), "", 100)
		return err == nil && len(l) == len(active)
	}, "spaces never became active")
	slices.Sort(active)
	var got []string
	after := ""
	for {
		l, err := e.svc.ActiveSpaces(context.Background(), after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, sp := range l {
			if sp.Status != "active" || sp.EnvironmentID != "envA" {
				t.Fatalf("listed %+v", sp)
			}
			got = append(got, sp.ID)
		}
		if len(l) < 2 {
			break
		}
		after = l[len(l)-1].ID
	}
	if !slices.Equal(got, active) {
		t.Fatalf("paged %v, want %v", got, active)
	}
	req, _ := http.NewRequest("GET", e.url+"/internal/v1/spaces?status=active&limit=1", nil)
	req.Header.Set(auth.InternalAuthHeader, "internal")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Data []spacesapi.SpaceInfo `json:"data"`
	}
	_ = json.NewDecoder(res.Body).Decode(&b)
	res.Body.Close()
	if res.StatusCode != 200 || len(b.Data) != 1 || b.Data[0].ID != active[0] {
		t.Fatalf("internal list = %d %+v", res.StatusCode, b)
	}
	for _, tt := range []struct {
		path, secret string
		status       int
	}{
		{"/internal/v1/spaces?status=active", "", 401},
		{"/internal/v1/spaces?status=active", "wrong", 401},
		{"/internal/v1/spaces", "internal", 400},
		{"/internal/v1/spaces?status=active&limit=0", "internal", 400},
		{"/internal/v1/spaces?status=active&limit=1001", "internal", 400},
	} {
		req, _ := http.NewRequest("GET", e.url+tt.path, nil)
		if tt.secret != "" {
			req.Header.Set(auth.InternalAuthHeader, tt.secret)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tt.status {
			t.Fatalf("%s (secret %q) = %d, want %d", tt.path, tt.secret, res.StatusCode, tt.status)
		}
	}
}

// TestGetSeesWrites: GET answers from a row cache; an update, a status change and a delete
// through this replica, and an update through another replica of the same database (seen on
// spacecast.spaces), all show on the next GETs.
func TestGetSeesWrites(t *testing.T) {
	eachBackend(t, func(t *testing.T, a *env) {
		b := start(t, a.db, a.brokers)
		// A replica's tail starts at the end of spacecast.spaces as it is when the tail's client
		// first asks; give it that moment before the writes it must see.
		time.Sleep(time.Second)
		st, out := a.call(writerA, "POST", "/video/v1/spaces", `{"passthrough":"v1"}`)
		if st != 201 {
			t.Fatalf("create: %d %v", st, out)
		}
		id := data(out)["id"].(string)
		passthrough := func(e *env) string {
			st, out := e.call(readerA, "GET", "/video/v1/spaces/"+id, "")
			if st != 200 {
				return fmt.Sprintf("status %d", st)
			}
			p, _ := data(out)["passthrough"].(string)
			return p
		}
		for _, e := range []*env{a, b} { // both replicas have the row cached now
			if p := passthrough(e); p != "v1" {
				t.Fatalf("GET after create: %q", p)
			}
		}
		if st, out := a.call(writerA, "PATCH", "/video/v1/spaces/"+id, `{"passthrough":"v2"}`); st != 200 {
			t.Fatalf("update: %d %v", st, out)
		}
		if p := passthrough(a); p != "v2" {
			t.Fatalf("GET on the writing replica right after the update: %q, want v2", p)
		}
		deadline := time.Now().Add(5 * time.Second)
		for passthrough(b) != "v2" {
			if time.Now().After(deadline) {
				t.Fatalf("the other replica still answers %q 5 s after the update", passthrough(b))
			}
			time.Sleep(20 * time.Millisecond)
		}
		// A broadcast created, then deleted, on the other replica: both replicas have the space's
		// broadcasts cached (the GETs above), the writing one shows the change at once and the
		// first one once the broadcast's event (keyed by the space) arrived.
		a.liveStream("livestream.created", "lsG", "envA")
		broadcasts := func(e *env) int {
			st, out := e.call(readerA, "GET", "/video/v1/spaces/"+id, "")
			if st != 200 {
				return -1
			}
			bs, _ := data(out)["broadcasts"].([]any)
			return len(bs)
		}
		st, out = b.call(writerA, "POST", "/video/v1/spaces/"+id+"/broadcasts", `{"live_stream_id":"lsG"}`)
		if st != 201 {
			t.Fatalf("create broadcast: %d %v", st, out)
		}
		bid := data(out)["id"].(string)
		if n := broadcasts(b); n != 1 {
			t.Fatalf("GET on the writing replica right after the broadcast create: %d broadcasts, want 1", n)
		}
		testenv.Eventually(t, 5*time.Second, func() bool { return broadcasts(a) == 1 }, "the other replica still shows %d broadcasts after the create", broadcasts(a))
		if st, out := b.call(writerA, "DELETE", "/video/v1/spaces/"+id+"/broadcasts/"+bid, ""); st != 204 {
			t.Fatalf("delete broadcast: %d %v", st, out)
		}
		if n := broadcasts(b); n != 0 {
			t.Fatalf("GET on the writing replica right after the broadcast delete: %d broadcasts, want 0", n)
		}
		testenv.Eventually(t, 5*time.Second, func() bool { return broadcasts(a) == 0 }, "the other replica still shows %d broadcasts after the delete", broadcasts(a))
		// A status change applied from the SFU's events.
		a.rtcEvent("participant.joined", id, "c1", 1, 1)
		deadline = time.Now().Add(10 * time.Second)
		for {
			_, out := a.call(readerA, "GET", "/video/v1/spaces/"+id, "")
			if data(out)["status"] == "active" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET still shows %v after participant.joined", data(out)["status"])
			}
			time.Sleep(20 * time.Millisecond)
		}
		a.rtcEvent("participant.left", id, "c1", 0, 2)
		deadline = time.Now().Add(10 * time.Second)
		for {
			_, out := a.call(readerA, "GET", "/video/v1/spaces/"+id, "")
			if data(out)["status"] == "idle" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET still shows %v after participant.left", data(out)["status"])
			}
			time.Sleep(20 * time.Millisecond)
		}
		if st, _ := b.call(writerA, "DELETE", "/video/v1/spaces/"+id, ""); st != 204 {
			t.Fatalf("delete on the other replica: %d", st)
		}
		if st, _ := b.call(readerA, "GET", "/video/v1/spaces/"+id, ""); st != 404 {
			t.Fatalf("GET on the deleting replica after delete: %d, want 404", st)
		}
		deadline = time.Now().Add(5 * time.Second)
		for {
			if st, _ := a.call(readerA, "GET", "/video/v1/spaces/"+id, ""); st == 404 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the first replica still answers the deleted space 5 s after the delete")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Another environment's token still cannot see a cached space.
		_, out = a.call(writerA, "POST", "/video/v1/spaces", `{}`)
		other := data(out)["id"].(string)
		if st, _ := a.call(writerB, "GET", "/video/v1/spaces/"+other, ""); st != 404 {
			t.Fatalf("envB GET of a cached envA space: %d, want 404", st)
		}
	})
}
