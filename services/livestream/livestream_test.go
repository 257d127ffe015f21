package livestream_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/livestream"
)

// tokens is an in-memory TokenLookup: the keys service is tested in its own module.
type tokens map[string]auth.TokenRecord

func (m tokens) LookupToken(_ context.Context, id string) (auth.TokenRecord, error) {
	if r, ok := m[id]; ok {
		return r, nil
	}
	return auth.TokenRecord{}, auth.ErrTokenNotFound
}

// signingKeys is an in-memory spacejwt.KeySource with one key of envA, made once per test binary.
type signingKeys struct{ pk spacejwt.PublicKey }

func (k signingKeys) PublicKeys(context.Context) ([]spacejwt.PublicKey, error) {
	return []spacejwt.PublicKey{k.pk}, nil
}

var (
	playbackKeyOnce sync.Once
	playbackKeyPEM  []byte
	playbackKey     *rsa.PrivateKey
)

const playbackKID = "kid-a"

func testSigningKey(t *testing.T) (signingKeys, []byte) {
	playbackKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		playbackKey = k
		playbackKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	})
	return signingKeys{spacejwt.PublicKey{ID: playbackKID, EnvironmentID: "envA", Key: &playbackKey.PublicKey}}, playbackKeyPEM
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
	rdb     redis.UniversalClient
	prefix  string
	svc     *livestream.Service
	dir     string // recordings
	keyPEM  []byte // signs playback JWTs of envA
	stop    func()
}

func setup(t *testing.T, b testenv.SQLBackend) *env {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	return start(t, testenv.OpenSQL(t, b), testenv.Kafka(t), rdb, prefix, t.TempDir())
}

// start runs a service instance on the given database, brokers and Redis.
func start(t *testing.T, db *sqldb.DB, brokers []string, rdb redis.UniversalClient, prefix, dir string) *env {
	t.Helper()
	return startWith(t, db, brokers, rdb, prefix, dir, nil)
}

// startWith is start with settings changed by tune.
func startWith(t *testing.T, db *sqldb.DB, brokers []string, rdb redis.UniversalClient, prefix, dir string, tune func(*livestream.Config)) *env {
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
	keys, keyPEM := testSigningKey(t)
	jwtv, err := spacejwt.NewVerifier(keys, spacejwt.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := livestream.Config{RedisKeyPrefix: prefix, LockTTL: 2 * time.Second, TimerTick: 50 * time.Millisecond,
		RecordingsDir: dir, SegmentDuration: time.Second, LiveWindow: 6}
	if tune != nil {
		tune(&cfg)
	}
	var consume []string // a consumer group join costs time: only tests that set ConsumerGroup read spacecast.spaces
	if cfg.ConsumerGroup != "" {
		consume = brokers
	}
	svc, err := livestream.New(ctx, cfg, livestream.Deps{Logger: log, DB: db, Publisher: prod, Auth: authn, Redis: rdb,
		JWT: jwtv, RTMPListener: ln, Brokers: consume})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = svc.Run(ctx) }()
	e := httpapi.NewServer(httpapi.Options{Logger: log})
	svc.Register(e)
	srv := httptest.NewServer(e)
	var once sync.Once
	stop := func() { once.Do(func() { srv.Close(); cancel(); wg.Wait(); prod.Close() }) }
	t.Cleanup(stop)
	return &env{t: t, url: srv.URL, db: db, brokers: brokers, rdb: rdb, prefix: prefix, svc: svc, dir: dir, keyPEM: keyPEM, stop: stop}
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

func list(m map[string]any) []any { l, _ := m["data"].([]any); return l }

func messages(m map[string]any) string {
	er, _ := m["error"].(map[string]any)
	b, _ := json.Marshal(er["messages"])
	return string(b)
}

func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, setup(t, b)) })
	}
}

func (e *env) create(body string) map[string]any {
	e.t.Helper()
	st, res := e.call(writerA, "POST", "/video/v1/live-streams", body)
	if st != 201 {
		e.t.Fatalf("create = %d %v", st, res)
	}
	return data(res)
}

func TestLiveStreamShape(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ls := e.create(`{"playback_policy":"public","passthrough":"p1","new_asset_settings":{"playback_policy":["public"]}}`)
		key, _ := ls["stream_key"].(string)
		if len(key) < 32 || ls["status"] != "idle" || ls["reconnect_window"] != 60.0 || ls["max_continuous_duration"] != 43200.0 ||
			ls["latency_mode"] != "standard" || ls["passthrough"] != "p1" || ls["active_asset_id"] != nil {
			t.Fatalf("created %v", ls)
		}
		pids, _ := ls["playback_ids"].([]any)
		if len(pids) != 1 || pids[0].(map[string]any)["policy"] != "public" {
			t.Fatalf("playback_ids %v", ls["playback_ids"])
		}
		if r, ok := ls["recent_asset_ids"].([]any); !ok || len(r) != 0 {
			t.Fatalf("recent_asset_ids %v", ls["recent_asset_ids"])
		}
		if nas, _ := ls["new_asset_settings"].(map[string]any); nas == nil {
			t.Fatalf("new_asset_settings %v", ls["new_asset_settings"])
		}
		two := e.create(`{"playback_policies":["public","signed"],"reconnect_window":2,"max_continuous_duration":60,"latency_mode":"low"}`)
		if p, _ := two["playback_ids"].([]any); len(p) != 2 || two["reconnect_window"] != 2.0 || two["latency_mode"] != "low" {
			t.Fatalf("second %v", two)
		}
		if two["stream_key"] == key {
			t.Fatal("two streams share a stream key")
		}
		id := ls["id"].(string)
		if st, res := e.call(readerA, "GET", "/video/v1/live-streams/"+id, ""); st != 200 || data(res)["stream_key"] != key {
			t.Fatalf("get = %d %v", st, res)
		}
		st, res := e.call(readerA, "GET", "/video/v1/live-streams", "")
		if st != 200 || len(list(res)) != 2 || list(res)[0].(map[string]any)["id"] != two["id"] {
			t.Fatalf("list (newest first) = %d %v", st, res)
		}
		if st, res := e.call(readerA, "GET", "/video/v1/live-streams?limit=1&page=2", ""); st != 200 || len(list(res)) != 1 || list(res)[0].(map[string]any)["id"] != id {
			t.Fatalf("page 2 = %d %v", st, res)
		}

		// PATCH changes only what it names.
		st, res = e.call(writerA, "PATCH", "/video/v1/live-streams/"+id, `{"reconnect_window":1800,"max_continuous_duration":60}`)
		if d := data(res); st != 200 || d["reconnect_window"] != 1800.0 || d["max_continuous_duration"] != 60.0 || d["passthrough"] != "p1" || d["stream_key"] != key {
			t.Fatalf("patch = %d %v", st, res)
		}

		// reset-stream-key: a new key; the old one no longer finds the stream.
		st, res = e.call(writerA, "POST", "/video/v1/live-streams/"+id+"/reset-stream-key", "")
		newKey, _ := data(res)["stream_key"].(string)
		if st != 201 || newKey == "" || newKey == key {
			t.Fatalf("reset = %d %v", st, res)
		}
		if _, res := e.call(readerA, "GET", "/video/v1/live-streams?stream_key="+key, ""); len(list(res)) != 0 {
			t.Fatalf("old key still finds %v", res)
		}
		if _, res := e.call(readerA, "GET", "/video/v1/live-streams?stream_key="+newKey, ""); len(list(res)) != 1 {
			t.Fatalf("new key finds %v", res)
		}

		// disable / enable.
		if st, res := e.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/disable", ""); st != 200 || res["data"] == nil {
			t.Fatalf("disable = %d %v", st, res)
		}
		if _, res := e.call(readerA, "GET", "/video/v1/live-streams?status=disabled", ""); len(list(res)) != 1 || list(res)[0].(map[string]any)["status"] != "disabled" {
			t.Fatalf("status=disabled %v", res)
		}
		if st, _ := e.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/enable", ""); st != 200 {
			t.Fatalf("enable = %d", st)
		}
		if _, res := e.call(readerA, "GET", "/video/v1/live-streams/"+id, ""); data(res)["status"] != "idle" {
			t.Fatalf("after enable %v", res)
		}

		// playback ids.
		st, res = e.call(writerA, "POST", "/video/v1/live-streams/"+id+"/playback-ids", `{"policy":"signed"}`)
		pid, _ := data(res)["id"].(string)
		if st != 201 || pid == "" || data(res)["policy"] != "signed" {
			t.Fatalf("add playback id = %d %v", st, res)
		}
		if st, res := e.call(readerA, "GET", "/video/v1/live-streams/"+id+"/playback-ids/"+pid, ""); st != 200 || data(res)["policy"] != "signed" {
			t.Fatalf("get playback id = %d %v", st, res)
		}
		if st, _ := e.call(writerA, "DELETE", "/video/v1/live-streams/"+id+"/playback-ids/"+pid, ""); st != 204 {
			t.Fatalf("delete playback id = %d", st)
		}
		if st, _ := e.call(readerA, "GET", "/video/v1/live-streams/"+id+"/playback-ids/"+pid, ""); st != 404 {
			t.Fatalf("deleted playback id = %d", st)
		}

		// assets: none recorded yet.
		if st, res := e.call(readerA, "GET", "/video/v1/assets", ""); st != 200 || len(list(res)) != 0 {
			t.Fatalf("assets = %d %v", st, res)
		}
		if st, _ := e.call(readerA, "GET", "/video/v1/assets/nope", ""); st != 404 {
			t.Fatalf("unknown asset = %d", st)
		}

		if st, _ := e.call(writerA, "DELETE", "/video/v1/live-streams/"+id, ""); st != 204 {
			t.Fatalf("delete = %d", st)
		}
		if st, _ := e.call(readerA, "GET", "/video/v1/live-streams/"+id, ""); st != 404 {
			t.Fatalf("deleted stream = %d", st)
		}

		// Events on spacecast.livestreams, read with an independent Kafka client, keyed by the stream id, in order.
		want := []string{"livestream.created", "livestream.updated", "livestream.updated", "livestream.disabled",
			"livestream.enabled", "livestream.updated", "livestream.updated", "livestream.deleted"}
		got, _ := readEvents(t, e.brokers, id, len(want))
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("events = %v, want %v", got, want)
		}
	})
}

// readEvents returns the types and data of the events with key id, checking their envelope.
func readEvents(t *testing.T, brokers []string, id string, n int) ([]string, []map[string]any) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(events.TopicLivestreams),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	var datas []map[string]any
	seen := map[string]bool{} // the outbox delivers at least once: two relays may both publish a row
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) != id {
				return
			}
			ev, err := events.Parse(r.Value)
			if err != nil {
				t.Errorf("bad envelope: %v", err)
				return
			}
			var res map[string]any
			isAsset := strings.HasPrefix(ev.Type, "asset.") || strings.HasPrefix(ev.Type, "livestream.simulcast_target.")
			if err := json.Unmarshal(ev.Data, &res); err != nil || (!isAsset && res["id"] != id) ||
				(isAsset && (res["live_stream_id"] != id || res["id"] == nil)) {
				t.Errorf("%s data %s is not the resource", ev.Type, ev.Data)
			}
			if _, has := res["stream_key"]; has || bytes.Contains(r.Value, []byte("stream_key")) {
				t.Errorf("%s carries a stream key: %s", ev.Type, r.Value)
			}
			if seen[ev.ID] {
				return
			}
			seen[ev.ID] = true
			// The subject (a webhook's object) is the event's own resource: the asset for
			// asset events; the Kafka key stays the live stream.
			if ev.Environment != "envA" || ev.Subject != res["id"] {
				t.Errorf("envelope %+v, want subject %v", ev, res["id"])
			}
			got = append(got, ev.Type)
			datas = append(datas, res)
		})
	}
	return got, datas
}

func TestLiveStreamBadInput(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ls := e.create(`{"playback_policy":["public"]}`)
		id := ls["id"].(string)
		cases := []struct {
			name, method, path, body, field string
		}{
			{"unknown field", "POST", "", `{"colour":"red"}`, "colour"},
			{"wrong type", "POST", "", `{"reconnect_window":"60"}`, "reconnect_window"},
			{"window low", "POST", "", `{"reconnect_window":-1}`, "reconnect_window"},
			{"window high", "POST", "", `{"reconnect_window":1801}`, "reconnect_window"},
			{"duration low", "POST", "", `{"max_continuous_duration":59}`, "max_continuous_duration"},
			{"duration high", "POST", "", `{"max_continuous_duration":43201}`, "max_continuous_duration"},
			{"latency", "POST", "", `{"latency_mode":"fast"}`, "latency_mode"},
			{"policy", "POST", "", `{"playback_policy":"private"}`, "playback_policy"},
			{"policy type", "POST", "", `{"playback_policy":5}`, "playback_policy"},
			{"asset settings", "POST", "", `{"new_asset_settings":[1]}`, "new_asset_settings"},
			{"passthrough", "POST", "", `{"passthrough":"` + strings.Repeat("x", 256) + `"}`, "passthrough"},
			{"patch window", "PATCH", "/" + id, `{"reconnect_window":1801}`, "reconnect_window"},
			{"patch duration", "PATCH", "/" + id, `{"max_continuous_duration":43201}`, "max_continuous_duration"},
			{"patch unknown", "PATCH", "/" + id, `{"stream_key":"mine"}`, "stream_key"},
			{"pid policy", "POST", "/" + id + "/playback-ids", `{"policy":"open"}`, "policy"},
			{"pid missing", "POST", "/" + id + "/playback-ids", `{}`, "policy"},
			{"list status", "GET", "?status=live", "", "status"},
			{"list limit", "GET", "?limit=101", "", "limit"},
		}
		for _, c := range cases {
			st, res := e.call(writerA, c.method, "/video/v1/live-streams"+c.path, c.body)
			if st != 400 || !strings.Contains(messages(res), c.field) {
				t.Errorf("%s: %d %v, want 400 naming %s", c.name, st, res, c.field)
			}
		}
		// Nothing changed.
		if _, res := e.call(readerA, "GET", "/video/v1/live-streams", ""); len(list(res)) != 1 {
			t.Fatalf("bad creates left rows: %v", res)
		}
		if _, res := e.call(readerA, "GET", "/video/v1/live-streams/"+id, ""); data(res)["reconnect_window"] != 60.0 ||
			len(data(res)["playback_ids"].([]any)) != 1 {
			t.Fatalf("bad patches changed %v", res)
		}
	})
}

func TestLiveStreamAccess(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	ls := e.create(`{"playback_policy":"public"}`)
	id := ls["id"].(string)
	pid := ls["playback_ids"].([]any)[0].(map[string]any)["id"].(string)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/" + id, ""},
		{"PATCH", "/" + id, `{"reconnect_window":5}`},
		{"DELETE", "/" + id, ""},
		{"POST", "/" + id + "/reset-stream-key", ""},
		{"PUT", "/" + id + "/disable", ""},
		{"PUT", "/" + id + "/enable", ""},
		{"POST", "/" + id + "/playback-ids", `{"policy":"public"}`},
		{"GET", "/" + id + "/playback-ids/" + pid, ""},
		{"DELETE", "/" + id + "/playback-ids/" + pid, ""},
	} {
		if st, res := e.call(writerB, c.method, "/video/v1/live-streams"+c.path, c.body); st != 404 {
			t.Errorf("other environment %s %s = %d %v, want 404", c.method, c.path, st, res)
		}
	}
	if _, res := e.call(writerB, "GET", "/video/v1/live-streams", ""); len(list(res)) != 0 {
		t.Fatalf("other environment lists %v", res)
	}
	if st, _ := e.call(readerA, "POST", "/video/v1/live-streams", "{}"); st != 403 {
		t.Fatalf("reader create = %d, want 403", st)
	}
	if st, _ := e.call(creds{}, "GET", "/video/v1/live-streams", ""); st != 401 {
		t.Fatalf("anonymous = %d, want 401", st)
	}
	if st, res := e.call(readerA, "GET", "/video/v1/live-streams/"+id, ""); st != 200 || data(res)["status"] != "idle" ||
		data(res)["reconnect_window"] != 60.0 || data(res)["stream_key"] != ls["stream_key"] {
		t.Fatalf("other environment's calls changed the stream: %v", res)
	}
}
