package livestream_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/redisconn"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/testenv"
)

// These tests run the standalone livestream binary (cmd/livestream) as child processes on
// real Redis (SPACECAST_TEST_REDIS_URL, else an embedded server) and SQLite/PostgreSQL, with the
// embedded Kafka broker of the test process, and kill -9 them while ffmpeg publishes.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func livestreamBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the livestream binary")
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "livestream-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "livestream")
		out, err := exec.Command("go", "build", "-o", binPath, "./cmd/livestream").CombinedOutput()
		if err != nil {
			binErr = &buildError{err: err, out: string(out)}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

// cluster is what the child processes share: database, Redis, Kafka, recordings, keys API.
type cluster struct {
	t        *testing.T
	dsn      string
	redisURL string
	prefix   string
	brokers  []string
	dir      string
	keysURL  string
	lockTTL  time.Duration
	sweep    time.Duration
}

const internalSecret = "s3cret"

func newCluster(t *testing.T, b testenv.SQLBackend) *cluster {
	t.Helper()
	redisURL, prefix := testenv.RedisURL(t)
	c := &cluster{t: t, dsn: testenv.DSN(t, b), redisURL: redisURL, prefix: prefix, brokers: testenv.Kafka(t),
		dir: t.TempDir(), lockTTL: 3 * time.Second, sweep: 500 * time.Millisecond}
	t.Cleanup(func() { // the prefix's keys on a shared Redis
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rdb, err := redisconn.Open(ctx, redisURL)
		if err != nil {
			return
		}
		defer rdb.Close()
		iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	keys, _ := testSigningKey(t)
	mux := http.NewServeMux()
	tok := map[string]auth.TokenRecord{
		writerA.id: {ID: writerA.id, EnvironmentID: "envA", SecretHash: auth.HashSecret(writerA.secret), Permissions: []string{auth.VideoRead, auth.VideoWrite}},
		readerA.id: {ID: readerA.id, EnvironmentID: "envA", SecretHash: auth.HashSecret(readerA.secret), Permissions: []string{auth.VideoRead}},
	}
	reply := func(rw http.ResponseWriter, r *http.Request, v any, ok bool) {
		switch {
		case r.Header.Get(auth.InternalAuthHeader) != internalSecret:
			rw.WriteHeader(http.StatusUnauthorized)
		case !ok:
			rw.WriteHeader(http.StatusNotFound)
		default:
			_ = json.NewEncoder(rw).Encode(map[string]any{"data": v})
		}
	}
	mux.HandleFunc("GET /internal/v1/access-tokens/{id}", func(rw http.ResponseWriter, r *http.Request) {
		rec, ok := tok[r.PathValue("id")]
		reply(rw, r, rec, ok)
	})
	mux.HandleFunc("GET /internal/v1/environments/{id}", func(rw http.ResponseWriter, r *http.Request) {
		reply(rw, r, auth.Environment{ID: r.PathValue("id"), Name: r.PathValue("id")}, true)
	})
	mux.HandleFunc("GET /internal/v1/jwks", func(rw http.ResponseWriter, r *http.Request) {
		reply(rw, r, spacejwt.JWKS{Keys: []spacejwt.JWK{spacejwt.ToJWK(keys.pk)}}, true)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c.keysURL = srv.URL
	return c
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is one running livestream binary.
type proc struct {
	*env
	cmd  *exec.Cmd
	rtmp string
	logs *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func (c *cluster) start(name string, extraEnv ...string) *proc {
	t := c.t
	t.Helper()
	bin := livestreamBinary(t)
	httpAddr, rtmpAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"SPACECAST_HTTP_ADDR="+httpAddr,
		"SPACECAST_RTMP_ADDR="+rtmpAddr,
		"SPACECAST_DATABASE_URL="+c.dsn,
		"SPACECAST_REDIS_URL="+c.redisURL,
		"SPACECAST_LIVESTREAM_REDIS_PREFIX="+c.prefix,
		"SPACECAST_KAFKA_BROKERS="+strings.Join(c.brokers, ","),
		"SPACECAST_INTERNAL_SECRET="+internalSecret,
		"SPACECAST_KEYS_URL="+c.keysURL,
		"SPACECAST_RECORDINGS_DIR="+c.dir,
		"SPACECAST_HLS_SEGMENT_DURATION=1s",
		"SPACECAST_LIVESTREAM_LOCK_TTL="+c.lockTTL.String(),
		"SPACECAST_LIVESTREAM_SWEEP_INTERVAL="+c.sweep.String(),
		"SPACECAST_LOG_LEVEL=info",
		"SPACECAST_ACCESS_LOG=false",
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{env: &env{t: t, url: "http://" + httpAddr, brokers: c.brokers, dir: c.dir}, cmd: cmd, rtmp: rtmpAddr, logs: logs,
		done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, logs)
		}
	})
	waitFor(t, 30*time.Second, func() bool {
		res, err := http.Get(p.url + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, "%s never ready; logs:\n%s", name, logs)
	return p
}

// kill9 kills the process with SIGKILL (no clean end of anything).
func (p *proc) kill9() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	<-p.done
}

func (p *proc) rtmpURL(key string) string { return "rtmp://" + p.rtmp + "/live/" + key }

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// playlistSeconds sums the EXTINF durations of a playlist on disk and reports its tags.
func playlistSeconds(t *testing.T, path string) (float64, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "#EXTINF:"); ok {
			v, _, _ = strings.Cut(v, ",")
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("bad EXTINF in %s: %q", path, sc.Text())
			}
			sum += f
		}
	}
	return sum, string(b)
}

// checkRecording: the asset is ready, its VOD playlist is ended, and its duration is the media
// the playlist lists (not 0, not one connection's share).
func checkRecording(t *testing.T, e *env, dir, assetID string, atLeast float64) map[string]any {
	t.Helper()
	as := e.asset(assetID)
	if as["status"] != "ready" {
		t.Fatalf("asset %v, want ready", as)
	}
	sum, body := playlistSeconds(t, filepath.Join(dir, assetID, "vod.m3u8"))
	for _, want := range []string{"#EXT-X-ENDLIST", "#EXT-X-PLAYLIST-TYPE:VOD"} {
		if !strings.Contains(body, want) {
			t.Fatalf("VOD playlist lacks %s:\n%s", want, body)
		}
	}
	dur, _ := as["duration"].(float64)
	t.Logf("asset %s: duration %.3fs, playlist %.3fs", assetID, dur, sum)
	if math.Abs(dur-sum) > 0.05 || sum < atLeast {
		t.Fatalf("asset duration %.3fs, playlist lists %.3fs (want ≥ %.1fs and equal)", dur, sum, atLeast)
	}
	return as
}

func TestCrashedInstanceRecovers(t *testing.T) {
	needFFmpeg(t)
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			c := newCluster(t, b)
			p1 := c.start("p1")
			ls := p1.create(`{"playback_policy":"public","reconnect_window":4}`)
			id, key := ls["id"].(string), ls["stream_key"].(string)
			publishFFmpeg(t, p1.rtmpURL(key), time.Minute)
			waitFor(t, 20*time.Second, func() bool { return p1.stream(id)["status"] == "active" }, "stream never active")
			assetID := p1.stream(id)["active_asset_id"].(string)
			time.Sleep(5 * time.Second)
			p1.kill9()
			killed := time.Now()

			p2 := c.start("p2")
			waitFor(t, c.lockTTL+4*time.Second+15*time.Second, func() bool { return p2.stream(id)["status"] == "idle" },
				"stream still %v after the crash", p2.stream(id)["status"])
			t.Logf("kill -9 → idle in %v (lock TTL %v, reconnect_window 4s)", time.Since(killed).Round(10*time.Millisecond), c.lockTTL)
			checkRecording(t, p2.env, c.dir, assetID, 4)
			if cur := p2.stream(id); cur["active_asset_id"] != nil {
				t.Fatalf("stream after idle %v", cur)
			}
			pub := pids(ls)["public"]
			if st, _, _ := p2.get("/stream/" + pub + ".m3u8"); st != http.StatusPreconditionFailed {
				t.Fatalf("live playlist of the idle stream = %d, want 412", st)
			}
			if st, res := p2.call(writerA, "DELETE", "/video/v1/assets/"+assetID, ""); st != 204 {
				t.Fatalf("delete asset = %d %v", st, res)
			}
			want := []string{"livestream.created", "livestream.connected", "asset.created", "livestream.recording", "livestream.active",
				"livestream.disconnected", "livestream.idle", "asset.ready", "asset.live_stream_completed", "asset.deleted"}
			got, datas := readEvents(t, c.brokers, id, len(want))
			if !slices.Equal(got, want) {
				t.Fatalf("events\n got %v\nwant %v", got, want)
			}
			if d, _ := datas[7]["duration"].(float64); d < 4 {
				t.Fatalf("asset.ready carries duration %v", datas[7]["duration"])
			}
		})
	}
}

// TestCrashThenReconnect: after kill -9, an encoder that comes back inside reconnect_window
// (to another instance) continues the same asset after a discontinuity; one that comes back
// after the window, with no instance running meanwhile, starts a new asset and the old one is
// ended with what it recorded.
func TestCrashThenReconnect(t *testing.T) {
	needFFmpeg(t)
	c := newCluster(t, testenv.SQLBackends(t)[0])
	p1 := c.start("p1")
	ls := p1.create(`{"playback_policy":"public","reconnect_window":12}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	publishFFmpeg(t, p1.rtmpURL(key), time.Minute)
	waitFor(t, 20*time.Second, func() bool { return p1.stream(id)["status"] == "active" }, "stream never active")
	asset1 := p1.stream(id)["active_asset_id"].(string)
	time.Sleep(3 * time.Second)
	p1.kill9()

	// Inside the window, on a second instance: the encoder retries until the dead lease lapses.
	p2 := c.start("p2")
	var enc *encoder
	waitFor(t, 15*time.Second, func() bool {
		enc = publishFFmpeg(t, p2.rtmpURL(key), time.Minute)
		select {
		case <-enc.done: // refused (the dead publisher's lease): try again
			enc.done <- nil
			time.Sleep(300 * time.Millisecond)
			return false
		case <-time.After(2 * time.Second):
			return true
		}
	}, "the encoder never got back in")
	waitFor(t, 15*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(c.dir, asset1, "vod.m3u8"))
		return bytes.Contains(b, []byte("#EXT-X-DISCONTINUITY"))
	}, "no discontinuity in the resumed recording")
	if cur := p2.stream(id); cur["status"] != "active" || cur["active_asset_id"] != asset1 {
		t.Fatalf("after the reconnect %v, want active on %s", cur, asset1)
	}
	time.Sleep(2 * time.Second)
	p2.kill9()
	enc.kill(t)

	// Past the window with nothing running: the next publish starts a new asset.
	time.Sleep(c.lockTTL + 12*time.Second + time.Second)
	p3 := c.start("p3")
	publishFFmpeg(t, p3.rtmpURL(key), time.Minute)
	waitFor(t, 20*time.Second, func() bool {
		cur := p3.stream(id)
		return cur["status"] == "active" && cur["active_asset_id"] != nil && cur["active_asset_id"] != asset1
	}, "a publish after the window did not start a new asset: %v", p3.stream(id))
	checkRecording(t, p3.env, c.dir, asset1, 4)
	if st, _ := p3.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/complete", ""); st != 200 {
		t.Fatalf("complete = %d", st)
	}
	if cur := p3.stream(id); cur["status"] != "idle" {
		t.Fatalf("after complete %v", cur)
	}
}

// TestCompleteThroughAnotherReplica: complete on instance B while ffmpeg publishes to instance
// A kicks the publisher, records the duration of the segments written, and nothing is written
// to the recording after it is ready.
func TestCompleteThroughAnotherReplica(t *testing.T) {
	needFFmpeg(t)
	a := setup(t, testenv.SQLBackends(t)[0])
	b := start(t, a.db, a.brokers, a.rdb, a.prefix, a.dir)
	ls := a.create(`{"playback_policy":"public","reconnect_window":60}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	enc := publishFFmpeg(t, a.rtmpURL(key), time.Minute)
	waitFor(t, 20*time.Second, func() bool { return a.stream(id)["status"] == "active" }, "stream never active")
	assetID := a.stream(id)["active_asset_id"].(string)
	time.Sleep(5 * time.Second)
	if st, res := b.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/complete", ""); st != 200 {
		t.Fatalf("complete through B = %d %v", st, res)
	}
	if cur := b.stream(id); cur["status"] != "idle" || cur["active_asset_id"] != nil {
		t.Fatalf("after complete %v", cur)
	}
	_ = enc.wait(t, 10*time.Second) // kicked
	checkRecording(t, b, a.dir, assetID, 4)
	snapshot := func() string {
		var sb strings.Builder
		ents, err := os.ReadDir(filepath.Join(a.dir, assetID))
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range ents {
			fi, err := de.Info()
			if err != nil {
				t.Fatal(err)
			}
			sb.WriteString(de.Name() + " " + strconv.FormatInt(fi.Size(), 10) + " " + fi.ModTime().String() + "\n")
		}
		return sb.String()
	}
	before := snapshot()
	time.Sleep(3 * time.Second)
	if after := snapshot(); after != before {
		t.Fatalf("the recording changed after ready:\nbefore\n%s\nafter\n%s", before, after)
	}
	checkRecording(t, b, a.dir, assetID, 4)
}

// TestCrashWithFreshRedis is the dev mode's crash: its Redis is in memory, so after kill -9
// the restarted process finds a stream active in SQL with no lease and no timer at all. The
// sweeper disconnects it at its last known time and the reconnect window runs from there.
func TestCrashWithFreshRedis(t *testing.T) {
	needFFmpeg(t)
	c := newCluster(t, testenv.SQLBackends(t)[0])
	p1 := c.start("p1")
	ls := p1.create(`{"playback_policy":"public","reconnect_window":5}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	publishFFmpeg(t, p1.rtmpURL(key), time.Minute)
	waitFor(t, 20*time.Second, func() bool { return p1.stream(id)["status"] == "active" }, "stream never active")
	assetID := p1.stream(id)["active_asset_id"].(string)
	time.Sleep(4 * time.Second)
	p1.kill9()
	killed := time.Now()

	_, c.prefix = testenv.RedisURL(t) // nothing of p1's Redis state survives
	p2 := c.start("p2")
	waitFor(t, 5*time.Second+15*time.Second, func() bool { return p2.stream(id)["status"] == "idle" },
		"stream still %v after the crash", p2.stream(id)["status"])
	t.Logf("kill -9 → restart with an empty Redis → idle in %v (reconnect_window 5s)", time.Since(killed).Round(10*time.Millisecond))
	checkRecording(t, p2.env, c.dir, assetID, 3)
	want := []string{"livestream.created", "livestream.connected", "asset.created", "livestream.recording", "livestream.active",
		"livestream.disconnected", "livestream.idle", "asset.ready", "asset.live_stream_completed"}
	if got, _ := readEvents(t, c.brokers, id, len(want)); !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
}

// TestCompleteAfterCrash: `complete` on another instance right after kill -9 waits for the dead
// owner's lease to lapse, then ends the recording from the files on disk with their duration.
func TestCompleteAfterCrash(t *testing.T) {
	needFFmpeg(t)
	c := newCluster(t, testenv.SQLBackends(t)[0])
	p1 := c.start("p1")
	ls := p1.create(`{"playback_policy":"public","reconnect_window":600}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	publishFFmpeg(t, p1.rtmpURL(key), time.Minute)
	waitFor(t, 20*time.Second, func() bool { return p1.stream(id)["status"] == "active" }, "stream never active")
	assetID := p1.stream(id)["active_asset_id"].(string)
	time.Sleep(4 * time.Second)
	p1.kill9()
	p2 := c.start("p2")
	started := time.Now()
	if st, res := p2.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/complete", ""); st != 200 {
		t.Fatalf("complete after the crash = %d %v", st, res)
	}
	t.Logf("complete after kill -9 took %v (lock TTL %v)", time.Since(started).Round(10*time.Millisecond), c.lockTTL)
	if cur := p2.stream(id); cur["status"] != "idle" || cur["active_asset_id"] != nil {
		t.Fatalf("after complete %v", cur)
	}
	checkRecording(t, p2.env, c.dir, assetID, 3)
}
