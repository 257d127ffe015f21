package dev

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/sfu/spacesclient"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type devProc struct {
	cancel context.CancelFunc
	done   chan error
	out    *bytes.Buffer
}

func startDev(t *testing.T, dir, httpAddr, kafkaAddr string) *devProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &devProc{cancel: cancel, done: make(chan error, 1), out: &bytes.Buffer{}}
	o := Options{
		DataDir: dir, HTTPAddr: httpAddr, KafkaAddr: kafkaAddr, RTMPAddr: "127.0.0.1:0", Logger: testenv.Logger(t), Out: p.out,
		Env: envconfig.FromMap(map[string]string{"SPACECAST_BOOTSTRAP_TOKEN_ID": "e2e-admin", "SPACECAST_BOOTSTRAP_TOKEN_SECRET": "e2e-admin-secret-123"}),
	}
	go func() { p.done <- Run(ctx, o) }()
	waitReady(t, httpAddr)
	return p
}

func (p *devProc) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("dev mode stopped with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("dev mode did not stop")
	}
}

func api(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.SetBasicAuth("e2e-admin", "e2e-admin-secret-123")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return res.StatusCode, out
}

// TestDevModeEndToEnd starts the all-in-one dev mode, creates a space over HTTP, and reads
// space.created from spacecast.spaces with independent Kafka clients (franz-go, and kcat when
// installed); a restart on the same data directory keeps the space and the topic's data.
func TestDevModeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	httpAddr, kafkaAddr := freeAddr(t), freeAddr(t)
	p := startDev(t, dir, httpAddr, kafkaAddr)
	base := "http://" + httpAddr
	if !strings.Contains(p.out.String(), "Spacecast dev is running") {
		t.Fatalf("banner missing: %q", p.out.String())
	}

	st, body := api(t, "POST", base+"/video/v1/spaces", `{"passthrough":"e2e"}`)
	sp, _ := body["data"].(map[string]any)
	if st != 201 || sp["id"] == nil {
		t.Fatalf("create space = %d %v", st, body)
	}
	id := sp["id"].(string)

	// franz-go: an independent client speaking the Kafka protocol.
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.ConsumeTopics(events.TopicSpaces), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	var got events.Envelope
	deadline := time.Now().Add(15 * time.Second)
	for got.ID == "" && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			ev, err := events.Parse(r.Value)
			if err == nil && ev.Type == "space.created" && ev.Subject == id && string(r.Key) == id {
				got = ev
			}
		})
	}
	cl.Close()
	if got.ID == "" {
		t.Fatal("space.created never arrived on spacecast.spaces")
	}
	var d map[string]any
	if err := json.Unmarshal(got.Data, &d); err != nil || d["id"] != id || d["passthrough"] != "e2e" || d["status"] != "idle" {
		t.Fatalf("event data %s", got.Data)
	}

	// kcat, the Debian package, when present (CI installs it).
	if kcat, err := exec.LookPath("kcat"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, kcat, "-b", kafkaAddr, "-t", events.TopicSpaces, "-C", "-o", "beginning", "-e", "-q", "-f", "%k %s\n").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("kcat: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), id+" ") || !strings.Contains(string(out), `"type":"space.created"`) {
			t.Fatalf("kcat did not read space.created for %s:\n%s", id, out)
		}
	} else {
		t.Log("kcat not installed: read with franz-go only")
	}

	// Restart on the same data directory: the space and the topic survive.
	p.stop(t)
	p = startDev(t, dir, httpAddr, kafkaAddr)
	defer p.stop(t)
	if st, body := api(t, "GET", base+"/video/v1/spaces/"+id, ""); st != 200 {
		t.Fatalf("space lost across restart: %d %v", st, body)
	}
	if strings.Contains(p.out.String(), "SPACECAST_TOKEN_SECRET=") {
		t.Fatal("a restart printed a new admin secret")
	}
	cl2, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.ConsumeTopics(events.TopicSpaces), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	found := false
	deadline = time.Now().Add(10 * time.Second)
	for !found && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl2.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { found = found || string(r.Key) == id })
	}
	if !found {
		t.Fatal("Kafka data lost across restart")
	}
}

// TestFirstStartPrintsAdminTokenOnce checks that without bootstrap settings the first start
// creates an admin token and prints it, the token works, and a restart prints no secret.
func TestFirstStartPrintsAdminTokenOnce(t *testing.T) {
	dir := t.TempDir()
	httpAddr, kafkaAddr := freeAddr(t), freeAddr(t)
	run := func() (*bytes.Buffer, context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		out := &bytes.Buffer{}
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, Options{DataDir: dir, HTTPAddr: httpAddr, KafkaAddr: kafkaAddr, RTMPAddr: "127.0.0.1:0", Logger: testenv.Logger(t), Out: out, Env: envconfig.FromMap(nil)})
		}()
		waitReady(t, httpAddr)
		return out, cancel, done
	}
	out, cancel, done := run()
	m := regexp.MustCompile(`SPACECAST_TOKEN_ID=(\S+)\s+export SPACECAST_TOKEN_SECRET=(\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("first start printed no admin token:\n%s", out)
	}
	req, _ := http.NewRequest("GET", "http://"+httpAddr+"/system/v1/whoami", nil)
	req.SetBasicAuth(m[1], m[2])
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("printed token does not work: %v %v", res, err)
	}
	res.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out, cancel, done = run()
	defer func() { cancel(); <-done }()
	if strings.Contains(out.String(), "SPACECAST_TOKEN_SECRET=") {
		t.Fatalf("restart printed a secret again:\n%s", out)
	}
}

func waitReady(t *testing.T, httpAddr string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() bool {
		res, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	}, "dev mode never became ready")
}

// TestSpaceGoesActiveThenIdle joins a space through the dev mode's SFU with the Go client and a
// JWT signed by a key created over the API: the space becomes active with a session id while
// the participant is connected and idle after it leaves, with space.active and space.idle on
// spacecast.spaces in that order.
func TestSpaceGoesActiveThenIdle(t *testing.T) {
	dir := t.TempDir()
	httpAddr, kafkaAddr := freeAddr(t), freeAddr(t)
	p := startDev(t, dir, httpAddr, kafkaAddr)
	defer p.stop(t)
	base := "http://" + httpAddr

	_, body := api(t, "POST", base+"/system/v1/signing-keys", "")
	key, _ := body["data"].(map[string]any)
	_, body = api(t, "POST", base+"/video/v1/spaces", "{}")
	id := body["data"].(map[string]any)["id"].(string)
	tok, err := spacejwt.Sign([]byte(key["private_key"].(string)), key["id"].(string),
		spacejwt.SignClaims{Audience: spacejwt.AudienceRT, Subject: id, ParticipantID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	status := func() (string, any) {
		_, b := api(t, "GET", base+"/video/v1/spaces/"+id, "")
		d, _ := b["data"].(map[string]any)
		s, _ := d["status"].(string)
		return s, d["active_session_id"]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := spacesclient.Join(ctx, "ws://"+httpAddr+"/spaces", tok, spacesclient.Options{LoopbackOnly: true})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	testenv.Eventually(t, 15*time.Second, func() bool { s, _ := status(); return s == "active" }, "space never became active")
	if _, sess := status(); sess == nil || sess == "" {
		t.Fatal("active space without active_session_id")
	}
	if st, _ := api(t, "DELETE", base+"/video/v1/spaces/"+id, ""); st != 409 {
		t.Fatalf("delete while active = %d, want 409", st)
	}
	// The same participant_id again is refused while alice is connected.
	var se *spacesclient.ServerError
	if c2, err := spacesclient.Join(ctx, "ws://"+httpAddr+"/spaces", tok, spacesclient.Options{LoopbackOnly: true}); err == nil {
		c2.Close()
		t.Fatal("a second connection with the same participant_id was admitted")
	} else if !errors.As(err, &se) || se.Type != 3 { // 3: duplicate participant
		t.Fatalf("duplicate join error = %v", err)
	}
	if err := c.Leave(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, func() bool { s, _ := status(); return s == "idle" }, "space never went idle")

	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.ConsumeTopics(events.TopicSpaces), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 3 && time.Now().Before(deadline) {
		pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			if ev, err := events.Parse(r.Value); err == nil && ev.Subject == id {
				got = append(got, ev.Type)
			}
		})
	}
	if strings.Join(got, ",") != "space.created,space.active,space.idle" {
		t.Fatalf("space events = %v", got)
	}
	if st, _ := api(t, "DELETE", base+"/video/v1/spaces/"+id, ""); st != 204 {
		t.Fatalf("delete when idle = %d", st)
	}
}

// TestDevLiveStream: in dev mode ffmpeg publishes over RTMP with the stream key of a live
// stream created over the API, and the HLS playlist is served on the one HTTP port.
func TestDevLiveStream(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ffmpeg is not installed; CI must install it")
		}
		t.Skip("ffmpeg is not installed")
	}
	httpAddr, kafkaAddr := freeAddr(t), freeAddr(t)
	p := startDev(t, t.TempDir(), httpAddr, kafkaAddr)
	defer p.stop(t)
	m := regexp.MustCompile(`RTMP ingest: rtmp://(\S+)/app/`).FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("banner has no RTMP address:\n%s", p.out)
	}
	base := "http://" + httpAddr
	st, res := api(t, "POST", base+"/video/v1/live-streams", `{"playback_policy":"public","reconnect_window":1}`)
	if st != 201 {
		t.Fatalf("create live stream = %d %v", st, res)
	}
	ls := res["data"].(map[string]any)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	pid := ls["playback_ids"].([]any)[0].(map[string]any)["id"].(string)
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
		"-f", "flv", "rtmp://"+m[1]+"/app/"+key)
	out := &strings.Builder{}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck
	testenv.Eventually(t, 20*time.Second, func() bool {
		res, err := http.Get(base + "/stream/" + pid + ".m3u8")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	}, "the HLS playlist never became available")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	testenv.Eventually(t, 15*time.Second, func() bool {
		_, res := api(t, "GET", base+"/video/v1/live-streams/"+id, "")
		return res["data"].(map[string]any)["status"] == "idle"
	}, "the live stream never went idle after the encoder stopped")
}
