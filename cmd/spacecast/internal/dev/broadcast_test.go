package dev

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/sfu/spacesclient"
)

// hookReceiver collects signed webhook deliveries, keeping those whose Mux-Signature verifies.
type hookReceiver struct {
	mu     sync.Mutex
	secret string
	got    []map[string]any
	bad    int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	sig := r.Header.Get("Mux-Signature")
	ts, v1, ok := "", []string{}, false
	for _, part := range strings.Split(sig, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			v1 = append(v1, v)
		}
	}
	mac := hmac.New(sha256.New, []byte(h.secret))
	mac.Write([]byte(ts + "." + string(raw)))
	want := hex.EncodeToString(mac.Sum(nil))
	for _, s := range v1 {
		ok = ok || hmac.Equal([]byte(s), []byte(want))
	}
	var body map[string]any
	if !ok || json.Unmarshal(raw, &body) != nil {
		h.bad++
		w.WriteHeader(400)
		return
	}
	h.got = append(h.got, body)
}

func (h *hookReceiver) types() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, len(h.got))
	for i, b := range h.got {
		out[i], _ = b["type"].(string)
	}
	return out
}

// TestDevBroadcast: in dev mode a broadcast of a space to a live stream goes through the API
// (created while the space is idle, started once a participant joined), ffmpeg stands in for
// the compositor publishing to the live stream, stop completes the live stream at once (its
// reconnect_window is 60 s), the space going idle stops the restarted broadcast, and a signed
// webhook arrives for each of video.space.broadcast.created, active, idle and deleted.
func TestDevBroadcast(t *testing.T) {
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

	recv := subscribeHooks(t, base, "video.space.broadcast.created", "video.space.broadcast.active", "video.space.broadcast.idle", "video.space.broadcast.deleted")
	fx := newBroadcastFixture(t, base)
	lsID, key, lsStatus, space, bc := fx.lsID, fx.streamKey, fx.lsStatus, fx.space, fx.broadcasts
	var bid string
	testenv.Eventually(t, 10*time.Second, func() bool {
		st, res := api(t, "POST", bc, `{"live_stream_id":"`+lsID+`","resolution":"1280x720"}`)
		if st == 201 {
			bid = res["data"].(map[string]any)["id"].(string)
		}
		return st == 201
	}, "spaces-api never accepted the live stream")
	bStatus := func() string {
		_, res := api(t, "GET", bc+"/"+bid, "")
		s, _ := res["data"].(map[string]any)["status"].(string)
		return s
	}
	if st, _ := api(t, "POST", bc+"/"+bid+"/start", ""); st != 409 {
		t.Fatalf("start while the space is idle = %d, want 409", st)
	}

	_, res := api(t, "POST", base+"/system/v1/signing-keys", "")
	sk := res["data"].(map[string]any)
	tok, err := spacejwt.Sign([]byte(sk["private_key"].(string)), sk["id"].(string),
		spacejwt.SignClaims{Audience: spacejwt.AudienceRT, Subject: space, ParticipantID: "host"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := spacesclient.Join(ctx, "ws://"+httpAddr+"/spaces", tok, spacesclient.Options{LoopbackOnly: true})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	defer c.Close()
	testenv.Eventually(t, 15*time.Second, func() bool {
		_, res := api(t, "GET", base+"/video/v1/spaces/"+space, "")
		return res["data"].(map[string]any)["status"] == "active"
	}, "space never became active")
	if st, res := api(t, "POST", bc+"/"+bid+"/start", ""); st != 200 {
		t.Fatalf("start = %d %v", st, res)
	}

	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "60", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
		"-f", "flv", "rtmp://"+m[1]+"/app/"+key)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill(); <-done }()
	testenv.Eventually(t, 20*time.Second, func() bool { return lsStatus() == "active" }, "the live stream never became active")
	if st, _ := api(t, "DELETE", bc+"/"+bid, ""); st != 409 {
		t.Fatalf("delete while active = %d, want 409", st)
	}
	if st, res := api(t, "POST", bc+"/"+bid+"/stop", ""); st != 200 {
		t.Fatalf("stop = %d %v", st, res)
	}
	// Completed at once, not after the 60 s reconnect_window; the publisher is dropped.
	testenv.Eventually(t, 15*time.Second, func() bool { return lsStatus() == "idle" }, "stop did not complete the live stream")
	select {
	case <-done:
		done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher was not dropped")
	}

	if st, _ := api(t, "POST", bc+"/"+bid+"/start", ""); st != 200 {
		t.Fatalf("restart = %d", st)
	}
	if err := c.Leave(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, func() bool { return bStatus() == "idle" }, "the space going idle did not stop the broadcast")
	if st, _ := api(t, "DELETE", bc+"/"+bid, ""); st != 204 {
		t.Fatalf("delete = %d", st)
	}

	want := "video.space.broadcast.created,video.space.broadcast.active,video.space.broadcast.idle," +
		"video.space.broadcast.active,video.space.broadcast.idle,video.space.broadcast.deleted"
	testenv.Eventually(t, 20*time.Second, func() bool { return strings.Join(recv.types(), ",") == want },
		"webhooks %v, want %s", recv.types(), want)
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if recv.bad != 0 {
		t.Fatalf("%d deliveries failed signature verification", recv.bad)
	}
	for _, b := range recv.got {
		obj, _ := b["object"].(map[string]any)
		d, _ := b["data"].(map[string]any)
		if obj["type"] != "broadcast" || obj["id"] != bid || d["space_id"] != space || d["live_stream_id"] != lsID ||
			d["resolution"] != "1280x720" || d["stream_key"] != nil {
			t.Fatalf("delivery %v", b)
		}
	}
}

// subscribeHooks registers a webhook endpoint for events with the dev server at base; the
// receiver verifies each delivery's signature with the endpoint's secret.
func subscribeHooks(t *testing.T, base string, events ...string) *hookReceiver {
	t.Helper()
	recv := &hookReceiver{}
	hooks := httptest.NewServer(recv)
	t.Cleanup(hooks.Close)
	body, _ := json.Marshal(map[string]any{"address": hooks.URL, "events": events})
	st, res := api(t, "POST", base+"/system/v1/webhooks", string(body))
	if st != 201 {
		t.Fatalf("webhook create = %d %v", st, res)
	}
	recv.mu.Lock()
	recv.secret, _ = res["data"].(map[string]any)["signing_secret"].(string)
	recv.mu.Unlock()
	return recv
}

// broadcastFixture is a public live stream (reconnect window 60 s) and a space to broadcast
// it from, created through the dev server's API.
type broadcastFixture struct {
	lsID, playbackID, streamKey string
	space, broadcasts           string // broadcasts: the space's broadcasts URL
	lsStatus                    func() string
}

func newBroadcastFixture(t *testing.T, base string) broadcastFixture {
	t.Helper()
	st, res := api(t, "POST", base+"/video/v1/live-streams", `{"playback_policy":"public","reconnect_window":60}`)
	if st != 201 {
		t.Fatalf("create live stream = %d %v", st, res)
	}
	ls := res["data"].(map[string]any)
	fx := broadcastFixture{lsID: ls["id"].(string), streamKey: ls["stream_key"].(string),
		playbackID: ls["playback_ids"].([]any)[0].(map[string]any)["id"].(string)}
	fx.lsStatus = func() string {
		_, res := api(t, "GET", base+"/video/v1/live-streams/"+fx.lsID, "")
		s, _ := res["data"].(map[string]any)["status"].(string)
		return s
	}
	st, res = api(t, "POST", base+"/video/v1/spaces", "{}")
	if st != 201 {
		t.Fatalf("create space = %d %v", st, res)
	}
	fx.space = res["data"].(map[string]any)["id"].(string)
	fx.broadcasts = base + "/video/v1/spaces/" + fx.space + "/broadcasts"
	return fx
}
