package livestream_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/livestream"
	"github.com/spacecast/spacecast/services/livestream/internal/rtmps"
)

// allowLoopback lets simulcast targets reach 127.0.0.1, as webhooks tests let receivers.
func allowLoopback(c *livestream.Config) {
	c.AllowNetworks = []string{"127.0.0.0/8", "::1/128"}
	c.SimulcastBackoff = 200 * time.Millisecond
}

// Simulcast target routes, and what they refuse (nothing changes), on each SQL backend.
func TestSimulcastTargetRoutes(t *testing.T) {
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			rdb, prefix := testenv.Redis(t)
			e := startWith(t, testenv.OpenSQL(t, b), testenv.Kafka(t), rdb, prefix, t.TempDir(), func(c *livestream.Config) {
				c.AllowNetworks = []string{"127.0.0.0/8"}
			})
			id := e.create(`{"playback_policy":"public","simulcast_targets":[{"url":"rtmp://127.0.0.1:21101/app","stream_key":"k0","passthrough":"first"}]}`)["id"].(string)
			base := "/video/v1/live-streams/" + id + "/simulcast-targets"
			st, res := e.call(writerA, "POST", base, `{"url":"rtmps://live.example.com/app","stream_key":"sk","passthrough":"yt"}`)
			tg := data(res)
			if st != 201 || tg["status"] != "idle" || tg["url"] != "rtmps://live.example.com/app" || tg["stream_key"] != "sk" ||
				tg["passthrough"] != "yt" || tg["id"] == "" {
				t.Fatalf("create target = %d %v", st, res)
			}
			tid := tg["id"].(string)
			if st, res := e.call(readerA, "GET", base+"/"+tid, ""); st != 200 || data(res)["id"] != tid || data(res)["stream_key"] != "sk" {
				t.Fatalf("get target = %d %v", st, res)
			}
			_, res = e.call(readerA, "GET", "/video/v1/live-streams/"+id, "")
			ts, _ := data(res)["simulcast_targets"].([]any)
			if len(ts) != 2 || ts[0].(map[string]any)["passthrough"] != "first" || ts[1].(map[string]any)["id"] != tid {
				t.Fatalf("live stream simulcast_targets = %v", data(res)["simulcast_targets"])
			}
			if st, _ := e.call(writerB, "GET", base+"/"+tid, ""); st != 404 {
				t.Errorf("another environment read the target: %d", st)
			}
			for _, c := range []struct{ body, want string }{
				{`{"url":"http://live.example.com/app"}`, "must use rtmp:// or rtmps://"},
				{`{"url":"rtmp:///app"}`, "no host"},
				{`{}`, "url: required"},
				{`{"url":"rtmp://live.example.com:0/app"}`, "port"},
				{`{"url":"rtmp://live.example.com:70000/app"}`, "port"},
				{`{"url":"rtmp://live.example.com"}`, "no application path"},
				{`{"url":"rtmp://u:p@live.example.com/app"}`, "credentials"},
				{`{"url":"rtmp://10.0.0.5/app"}`, "refused"},
				{`{"url":"rtmp://169.254.169.254/app"}`, "refused"},
				{`{"url":"rtmp://[::1]/app"}`, "refused"},
				{`{"url":"rtmp://2130706433/app"}`, "numeric host"},
				{`{"url":"rtmp://live.example.com/app","stream_key":"a\u0000b"}`, "stream_key"},
			} {
				if st, res := e.call(writerA, "POST", base, c.body); st != 400 || !strings.Contains(messages(res), c.want) {
					t.Errorf("POST %s = %d %v, want 400 naming %q", c.body, st, res, c.want)
				}
			}
			if st, _ := e.call(writerA, "POST", "/video/v1/live-streams", `{"simulcast_targets":[{"url":"rtmp://192.168.1.1/app"}]}`); st != 400 {
				t.Errorf("create with a private target = %d, want 400", st)
			}
			if st, _ := e.call(writerA, "PATCH", "/video/v1/live-streams/"+id, `{"simulcast_targets":[]}`); st != 400 {
				t.Errorf("PATCH simulcast_targets = %d, want 400", st)
			}
			for _, p := range []string{base + "/nope", "/video/v1/live-streams/nope/simulcast-targets/" + tid} {
				if st, res := e.call(writerA, "GET", p, ""); st != 404 {
					t.Errorf("GET %s = %d %v, want 404", p, st, res)
				}
				if st, res := e.call(writerA, "DELETE", p, ""); st != 404 {
					t.Errorf("DELETE %s = %d %v, want 404", p, st, res)
				}
			}
			_, res = e.call(readerA, "GET", "/video/v1/live-streams/"+id, "")
			if ts, _ := data(res)["simulcast_targets"].([]any); len(ts) != 2 {
				t.Fatalf("refused calls changed the targets: %v", ts)
			}
			if st, _ := e.call(writerA, "DELETE", base+"/"+tid, ""); st != 204 {
				t.Fatalf("delete target = %d", st)
			}
			if st, _ := e.call(readerA, "GET", base+"/"+tid, ""); st != 404 {
				t.Fatalf("deleted target still there: %d", st)
			}
			if st, _ := e.call(writerA, "DELETE", "/video/v1/live-streams/"+id, ""); st != 204 {
				t.Fatalf("delete live stream = %d", st)
			}
			if st, _ := e.call(readerA, "GET", "/video/v1/live-streams/"+id+"/simulcast-targets/"+ts[0].(map[string]any)["id"].(string), ""); st != 404 {
				t.Fatalf("a deleted live stream's target = %d, want 404", st)
			}
			got, _ := readEvents(t, e.brokers, id, 6)
			want := []string{"livestream.simulcast_target.created", "livestream.created", "livestream.simulcast_target.created",
				"livestream.simulcast_target.deleted", "livestream.simulcast_target.deleted", "livestream.deleted"}
			if !slices.Equal(got, want) {
				t.Fatalf("events %v, want %v", got, want)
			}
		})
	}
}

// Without the allow setting, loopback targets are refused (the production guard).
func TestSimulcastTargetGuardDefault(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	id := e.create(`{"playback_policy":"public"}`)["id"].(string)
	for _, u := range []string{"rtmp://127.0.0.1:21102/app", "rtmp://localhost/app"} {
		if st, res := e.call(writerA, "POST", "/video/v1/live-streams/"+id+"/simulcast-targets", `{"url":"`+u+`"}`); st != 400 ||
			!strings.Contains(messages(res), "refused") {
			t.Errorf("POST %s = %d %v, want 400 refused", u, st, res)
		}
	}
}

// receiver is ffmpeg listening for one RTMP publish and copying it to an FLV file.
type receiver struct {
	out    string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

func listenFFmpeg(t *testing.T, port int, out string) *receiver {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", "-y", "-listen", "1",
		"-f", "flv", "-i", fmt.Sprintf("rtmp://127.0.0.1:%d/app/KEY", port), "-c", "copy", out)
	r := &receiver{out: out, cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-r.done; r.done <- nil })
	return r
}

// targetStatus reads a target's status.
func (e *env) targetStatus(id, tid string) string {
	_, res := e.call(readerA, "GET", "/video/v1/live-streams/"+id+"/simulcast-targets/"+tid, "")
	s, _ := data(res)["status"].(string)
	return s
}

// probeFLV checks a receiver's file: H.264 and AAC, at least min seconds.
func probeFLV(t *testing.T, r *receiver, min float64) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
	case <-time.After(20 * time.Second):
		t.Fatalf("the receiver did not end after the stream; stderr:\n%s", r.stderr)
	}
	p := ffprobe(t, r.out)
	var codecs []string
	for _, s := range p.Streams {
		codecs = append(codecs, s.CodecType+":"+s.CodecName)
	}
	slices.Sort(codecs)
	if !slices.Equal(codecs, []string{"audio:aac", "video:h264"}) {
		t.Fatalf("received streams %v, want H.264 + AAC; receiver stderr:\n%s", codecs, r.stderr)
	}
	if d, _ := strconv.ParseFloat(p.Format.Duration, 64); d < min {
		t.Fatalf("received %.2f s, want at least %.0f s", d, min)
	}
}

// targetEvents are the target events among a live stream's first n events.
func targetEvents(t *testing.T, e *env, id string, n int) []string {
	t.Helper()
	got, _ := readEvents(t, e.brokers, id, n)
	var out []string
	for _, g := range got {
		if s, ok := strings.CutPrefix(g, "livestream.simulcast_target."); ok {
			out = append(out, s)
		}
	}
	return out
}

// waitTarget waits until the target has status want.
func (e *env) waitTarget(t *testing.T, id, tid, want string, d time.Duration) {
	t.Helper()
	waitFor(t, d, func() bool { return e.targetStatus(id, tid) == want }, "target %s %s, want %s", tid, e.targetStatus(id, tid), want)
}

// The source reaches a local ffmpeg receiver; the target goes starting, broadcasting, idle; it
// cannot be added or removed while the stream is live.
func TestSimulcastToFFmpegReceiver(t *testing.T) {
	needFFmpeg(t)
	rdb, prefix := testenv.Redis(t)
	e := startWith(t, testenv.OpenSQL(t, testenv.SQLBackends(t)[0]), testenv.Kafka(t), rdb, prefix, t.TempDir(), allowLoopback)
	const port = 21110
	r := listenFFmpeg(t, port, filepath.Join(t.TempDir(), "out.flv"))
	ls := e.create(`{"playback_policy":"public"}`)
	id := ls["id"].(string)
	base := "/video/v1/live-streams/" + id + "/simulcast-targets"
	st, res := e.call(writerA, "POST", base, fmt.Sprintf(`{"url":"rtmp://127.0.0.1:%d/app","stream_key":"KEY"}`, port))
	if st != 201 {
		t.Fatalf("create target = %d %v", st, res)
	}
	tid := data(res)["id"].(string)
	enc := publishFFmpeg(t, e.rtmpURL(ls["stream_key"].(string)), 6*time.Second)
	e.waitTarget(t, id, tid, "broadcasting", 15*time.Second)
	if st, res := e.call(writerA, "POST", base, `{"url":"rtmp://127.0.0.1:21111/app"}`); st != 400 || !strings.Contains(messages(res), "idle") {
		t.Errorf("create while live = %d %v, want 400 naming idle", st, res)
	}
	if st, res := e.call(writerA, "DELETE", base+"/"+tid, ""); st != 400 || !strings.Contains(messages(res), "idle") {
		t.Errorf("delete while live = %d %v, want 400 naming idle", st, res)
	}
	if err := enc.wait(t, 20*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, enc.stderr)
	}
	e.waitTarget(t, id, tid, "idle", 15*time.Second)
	probeFLV(t, r, 3)
	got := targetEvents(t, e, id, 12)
	if want := []string{"created", "starting", "broadcasting", "idle"}; !slices.Equal(got, want) {
		t.Fatalf("target events %v, want %v", got, want)
	}
	_, res = e.call(readerA, "GET", "/video/v1/live-streams/"+id, "")
	if ts, _ := data(res)["simulcast_targets"].([]any); len(ts) != 1 {
		t.Fatalf("refused calls changed the targets: %v", ts)
	}
}

// A receiver that is down: the target errors and retries, then broadcasts once it is up.
func TestSimulcastReceiverComesUpLater(t *testing.T) {
	needFFmpeg(t)
	rdb, prefix := testenv.Redis(t)
	e := startWith(t, testenv.OpenSQL(t, testenv.SQLBackends(t)[0]), testenv.Kafka(t), rdb, prefix, t.TempDir(), allowLoopback)
	const port = 21112
	ls := e.create(fmt.Sprintf(`{"playback_policy":"public","simulcast_targets":[{"url":"rtmp://127.0.0.1:%d/app/KEY"}]}`, port))
	id := ls["id"].(string)
	tid := ls["simulcast_targets"].([]any)[0].(map[string]any)["id"].(string)
	enc := publishFFmpeg(t, e.rtmpURL(ls["stream_key"].(string)), 12*time.Second)
	e.waitTarget(t, id, tid, "errored", 10*time.Second)
	time.Sleep(time.Second) // a few retries
	r := listenFFmpeg(t, port, filepath.Join(t.TempDir(), "out.flv"))
	e.waitTarget(t, id, tid, "broadcasting", 15*time.Second)
	if err := enc.wait(t, 25*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, enc.stderr)
	}
	e.waitTarget(t, id, tid, "idle", 15*time.Second)
	probeFLV(t, r, 3)
	got := targetEvents(t, e, id, 40)
	if len(got) < 6 || got[0] != "created" || got[1] != "starting" || got[2] != "errored" || got[len(got)-1] != "idle" ||
		got[len(got)-2] != "broadcasting" || strings.Count(strings.Join(got, ","), "starting") < 3 {
		t.Fatalf("target events %v, want created, starting, errored, (starting, errored)+, starting, broadcasting, idle", got)
	}
}

// An rtmps:// target: a TLS listener (the certificate trusted through the CA setting) in front
// of an ffmpeg receiver.
func TestSimulcastRTMPSTarget(t *testing.T) {
	needFFmpeg(t)
	certFile, keyFile, _, err := rtmps.SelfSigned(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	const port = 21113
	r := listenFFmpeg(t, port, filepath.Join(t.TempDir(), "out.flv"))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var tlsConns atomicCount
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				tlsConns.add()
				up, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	rdb, prefix := testenv.Redis(t)
	e := startWith(t, testenv.OpenSQL(t, testenv.SQLBackends(t)[0]), testenv.Kafka(t), rdb, prefix, t.TempDir(), func(c *livestream.Config) {
		allowLoopback(c)
		c.SimulcastCAFile = certFile
	})
	ls := e.create(fmt.Sprintf(`{"playback_policy":"public","simulcast_targets":[{"url":"rtmps://%s/app","stream_key":"KEY"}]}`, ln.Addr()))
	id := ls["id"].(string)
	tid := ls["simulcast_targets"].([]any)[0].(map[string]any)["id"].(string)
	enc := publishFFmpeg(t, e.rtmpURL(ls["stream_key"].(string)), 6*time.Second)
	e.waitTarget(t, id, tid, "broadcasting", 15*time.Second)
	if err := enc.wait(t, 20*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, enc.stderr)
	}
	e.waitTarget(t, id, tid, "idle", 15*time.Second)
	probeFLV(t, r, 3)
	if tlsConns.get() < 1 {
		t.Fatal("no TLS connection reached the receiver")
	}
}

type atomicCount struct {
	mu sync.Mutex
	n  int
}

func (a *atomicCount) add()     { a.mu.Lock(); a.n++; a.mu.Unlock() }
func (a *atomicCount) get() int { a.mu.Lock(); defer a.mu.Unlock(); return a.n }

// complete while a target broadcasts: the publisher is kicked and the target goes idle.
func TestSimulcastStopsOnComplete(t *testing.T) {
	needFFmpeg(t)
	rdb, prefix := testenv.Redis(t)
	e := startWith(t, testenv.OpenSQL(t, testenv.SQLBackends(t)[0]), testenv.Kafka(t), rdb, prefix, t.TempDir(), allowLoopback)
	const port = 21114
	r := listenFFmpeg(t, port, filepath.Join(t.TempDir(), "out.flv"))
	ls := e.create(fmt.Sprintf(`{"playback_policy":"public","simulcast_targets":[{"url":"rtmp://127.0.0.1:%d/app","stream_key":"KEY"}]}`, port))
	id := ls["id"].(string)
	tid := ls["simulcast_targets"].([]any)[0].(map[string]any)["id"].(string)
	publishFFmpeg(t, e.rtmpURL(ls["stream_key"].(string)), 60*time.Second)
	e.waitTarget(t, id, tid, "broadcasting", 15*time.Second)
	time.Sleep(3 * time.Second)
	if st, res := e.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/complete", ""); st != 200 {
		t.Fatalf("complete = %d %v", st, res)
	}
	e.waitTarget(t, id, tid, "idle", 10*time.Second)
	probeFLV(t, r, 2)
}

// The guard runs again at dial: a loopback target stored while loopback was allowed is not
// connected to by an instance without the allow setting (the target errors, no connection
// reaches the address).
func TestSimulcastGuardAtDial(t *testing.T) {
	needFFmpeg(t)
	rdb, prefix := testenv.Redis(t)
	db := testenv.OpenSQL(t, testenv.SQLBackends(t)[0])
	brokers := testenv.Kafka(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var reached atomicCount
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			reached.add()
			c.Close()
		}
	}()
	allowed := startWith(t, db, brokers, rdb, prefix, dir, allowLoopback)
	ls := allowed.create(`{"playback_policy":"public","simulcast_targets":[{"url":"rtmp://` + ln.Addr().String() + `/app/KEY"}]}`)
	allowed.stop()
	e := startWith(t, db, brokers, rdb, prefix, dir, func(c *livestream.Config) { c.SimulcastBackoff = 100 * time.Millisecond })
	id := ls["id"].(string)
	tid := ls["simulcast_targets"].([]any)[0].(map[string]any)["id"].(string)
	enc := publishFFmpeg(t, e.rtmpURL(ls["stream_key"].(string)), 4*time.Second)
	e.waitTarget(t, id, tid, "errored", 10*time.Second)
	if err := enc.wait(t, 20*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, enc.stderr)
	}
	e.waitTarget(t, id, tid, "idle", 10*time.Second)
	if n := reached.get(); n != 0 {
		t.Fatalf("%d connections reached the refused address", n)
	}
}

// An instance killed while a target broadcasts: the instance that settles the stream sets the
// target idle (nobody else would).
func TestSimulcastTargetIdleAfterCrash(t *testing.T) {
	needFFmpeg(t)
	t.Setenv("SPACECAST_LIVESTREAM_ALLOW_NETWORKS", "127.0.0.0/8")
	c := newCluster(t, testenv.SQLBackends(t)[0])
	p1 := c.start("p1")
	const port = 21115
	listenFFmpeg(t, port, filepath.Join(t.TempDir(), "out.flv"))
	ls := p1.create(fmt.Sprintf(`{"playback_policy":"public","reconnect_window":1,"simulcast_targets":[{"url":"rtmp://127.0.0.1:%d/app","stream_key":"KEY"}]}`, port))
	id, key := ls["id"].(string), ls["stream_key"].(string)
	tid := ls["simulcast_targets"].([]any)[0].(map[string]any)["id"].(string)
	publishFFmpeg(t, p1.rtmpURL(key), time.Minute)
	p1.waitTarget(t, id, tid, "broadcasting", 20*time.Second)
	p1.kill9()
	p2 := c.start("p2")
	p2.waitTarget(t, id, tid, "idle", 20*time.Second)
	got := targetEvents(t, p2.env, id, 20)
	if len(got) < 4 || got[len(got)-1] != "idle" || !slices.Contains(got, "broadcasting") {
		t.Fatalf("target events %v, want ..., broadcasting, idle", got)
	}
}
