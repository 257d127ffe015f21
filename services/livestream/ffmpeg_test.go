package livestream_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/testenv"
)

// These tests drive the service as a user would: Debian's ffmpeg publishes a generated test
// pattern with a tone over RTMP, ffprobe and ffmpeg read the HLS playlists over HTTP.

func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, b := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed; CI must install ffmpeg", b)
			}
			t.Skipf("%s is not installed (apt-get install ffmpeg)", b)
		}
	}
}

// encoder is a running ffmpeg publisher.
type encoder struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

// publishFFmpeg starts ffmpeg publishing a 320x240 25 fps H.264 test pattern (a keyframe every
// second) and a 440 Hz AAC tone to url, for at most maxDur.
func publishFFmpeg(t *testing.T, url string, maxDur time.Duration, extra ...string) *encoder {
	t.Helper()
	return publishFFmpegInput(t, url, []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", strconv.Itoa(int(maxDur.Seconds()))}, extra...)
}

// publishFFmpegInput is publishFFmpeg with other inputs.
func publishFFmpegInput(t *testing.T, url string, inputs []string, extra ...string) *encoder {
	t.Helper()
	args := append([]string{"-hide_banner", "-nostdin", "-loglevel", "warning", "-re"}, inputs...)
	if len(extra) > 0 {
		args = append(args, extra...)
	} else {
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
			"-c:a", "aac", "-b:a", "64k")
	}
	args = append(args, "-f", "flv", url)
	cmd := exec.Command("ffmpeg", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &encoder{cmd: cmd, stderr: &stderr, done: make(chan error, 1)}
	go func() { e.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-e.done })
	return e
}

// kill ends the encoder the hard way (a crash or a dropped network: no FCUnpublish).
func (e *encoder) kill(t *testing.T) {
	t.Helper()
	_ = e.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-e.done:
		e.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("ffmpeg did not die")
	}
}

// wait returns ffmpeg's exit error, failing the test if it runs longer than d.
func (e *encoder) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-e.done:
		e.done <- err
		return err
	case <-time.After(d):
		t.Fatalf("ffmpeg still running after %v; stderr:\n%s", d, e.stderr)
		return nil
	}
}

func (e *env) rtmpURL(key string) string {
	return "rtmp://" + e.svc.RTMPAddr().String() + "/live/" + key
}

// get fetches a playback URL: status, body.
func (e *env) get(path string) (int, []byte, http.Header) {
	e.t.Helper()
	res, err := http.Get(e.url + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b, res.Header
}

type probed struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func ffprobe(t *testing.T, url string) probed {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name:format=duration",
		"-of", "json", url).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v %s", url, err, out)
	}
	var p probed
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output %s: %v", out, err)
	}
	return p
}

func (p probed) codecs() []string {
	var out []string
	for _, s := range p.Streams {
		out = append(out, s.CodecType+"/"+s.CodecName)
	}
	slices.Sort(out)
	return out
}

func pids(ls map[string]any) map[string]string {
	out := map[string]string{}
	for _, p := range ls["playback_ids"].([]any) {
		m := p.(map[string]any)
		out[m["policy"].(string)] = m["id"].(string)
	}
	return out
}

func TestFFmpegLiveToVOD(t *testing.T) {
	needFFmpeg(t)
	e := setup(t, testenv.SQLBackends(t)[0])
	ls := e.create(`{"playback_policies":["public","signed"],"reconnect_window":3,"new_asset_settings":{"playback_policies":["public"]}}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	pub, signed := pids(ls)["public"], pids(ls)["signed"]

	if st, body, _ := e.get("/stream/" + pub + ".m3u8"); st != http.StatusPreconditionFailed {
		t.Fatalf("playlist before the stream is active = %d %s, want 412", st, body)
	}
	if st, _, _ := e.get("/stream/nosuchid.m3u8"); st != http.StatusNotFound {
		t.Fatalf("unknown playback id = %d, want 404", st)
	}

	// Session 1: publish until the stream is active, check the live playlist, then crash.
	started := time.Now()
	enc := publishFFmpeg(t, e.rtmpURL(key), time.Minute)
	testenv.Eventually(t, 15*time.Second, func() bool { return e.stream(id)["status"] == "active" }, "stream never became active")
	assetID := e.stream(id)["active_asset_id"].(string)
	st, body, hdr := e.get("/stream/" + pub + ".m3u8")
	if st != 200 || !bytes.HasPrefix(body, []byte("#EXTM3U")) || hdr.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(hdr.Get("Content-Type"), "mpegurl") {
		t.Fatalf("live playlist = %d %v %s", st, hdr, body)
	}
	if got := ffprobe(t, e.url+"/stream/"+pub+".m3u8").codecs(); !slices.Equal(got, []string{"audio/aac", "video/h264"}) {
		t.Fatalf("live streams found by ffprobe: %v, want one H.264 and one AAC", got)
	}
	// Signed playback id: no token, a token for another id, and a good token.
	if st, body, _ := e.get("/stream/" + signed + ".m3u8"); st != http.StatusForbidden {
		t.Fatalf("signed id without token = %d %s", st, body)
	}
	other, err := spacejwt.Sign(e.keyPEM, playbackKID, spacejwt.SignClaims{Audience: spacejwt.AudiencePlayback, Subject: pub})
	if err != nil {
		t.Fatal(err)
	}
	if st, _, _ := e.get("/stream/" + signed + ".m3u8?token=" + other); st != http.StatusForbidden {
		t.Fatalf("signed id with another id's token = %d", st)
	}
	rtTok, _ := spacejwt.Sign(e.keyPEM, playbackKID, spacejwt.SignClaims{Audience: spacejwt.AudienceRT, Subject: signed})
	if st, _, _ := e.get("/stream/" + signed + ".m3u8?token=" + rtTok); st != http.StatusForbidden {
		t.Fatalf("signed id with a space token = %d", st)
	}
	tok, _ := spacejwt.Sign(e.keyPEM, playbackKID, spacejwt.SignClaims{Audience: spacejwt.AudiencePlayback, Subject: signed})
	if got := ffprobe(t, e.url+"/stream/"+signed+".m3u8?token="+tok).codecs(); len(got) != 2 {
		t.Fatalf("signed playback with token: %v", got)
	}
	time.Sleep(2 * time.Second)
	enc.kill(t)
	firstLen := time.Since(started)

	// Session 2 inside the window: the same asset goes on, after a discontinuity.
	time.Sleep(time.Second)
	enc = publishFFmpeg(t, e.rtmpURL(key), time.Minute)
	testenv.Eventually(t, 15*time.Second, func() bool {
		_, b, _ := e.get("/stream/" + pub + "/source.m3u8")
		return bytes.Contains(b, []byte("#EXT-X-DISCONTINUITY\n"))
	}, "no discontinuity after the reconnect")
	if cur := e.stream(id); cur["status"] != "active" || cur["active_asset_id"] != assetID {
		t.Fatalf("after reconnect %v, want active on asset %s", cur, assetID)
	}
	started = time.Now()
	time.Sleep(3 * time.Second)
	enc.kill(t)
	published := firstLen + time.Since(started)

	// Past the window: idle, the asset is ready and plays as VOD to the end.
	testenv.Eventually(t, 15*time.Second, func() bool { return e.stream(id)["status"] == "idle" }, "stream never went idle")
	as := e.asset(assetID)
	if as["status"] != "ready" || as["is_live"] == true {
		t.Fatalf("asset after the window %v", as)
	}
	apid := as["playback_ids"].([]any)[0].(map[string]any)["id"].(string)
	_, vod, _ := e.get("/stream/" + apid + "/source.m3u8")
	for _, want := range []string{"#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-DISCONTINUITY", "#EXT-X-ENDLIST"} {
		if !bytes.Contains(vod, []byte(want)) {
			t.Fatalf("VOD playlist lacks %s:\n%s", want, vod)
		}
	}
	if st, _, _ := e.get("/stream/" + pub + ".m3u8"); st != http.StatusPreconditionFailed {
		t.Fatalf("live playlist of an idle stream = %d, want 412", st)
	}
	p := ffprobe(t, e.url+"/stream/"+apid+".m3u8")
	dur, _ := strconv.ParseFloat(p.Format.Duration, 64)
	assetDur, _ := as["duration"].(float64)
	t.Logf("published ≈ %.1fs, asset duration %.2fs, VOD duration %.2fs", published.Seconds(), assetDur, dur)
	if math.Abs(dur-assetDur) > 1.5 || math.Abs(dur-published.Seconds()) > 3 {
		t.Fatalf("VOD duration %.2fs, asset duration %.2fs, published ≈ %.1fs", dur, assetDur, published.Seconds())
	}
	// Decode the whole recording: every segment must be readable to the end.
	out, err := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-i", e.url+"/stream/"+apid+".m3u8", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("decoding the VOD: %v\n%s", err, out)
	}
	// The files are where the docs say.
	if _, err := os.Stat(filepath.Join(e.dir, assetID, "vod.m3u8")); err != nil {
		t.Fatal(err)
	}

	got, _ := readEvents(t, e.brokers, id, 15)
	want := []string{"livestream.created", "livestream.connected", "asset.created", "livestream.recording", "livestream.active",
		"livestream.disconnected", "livestream.connected", "livestream.recording", "livestream.active", "livestream.disconnected",
		"livestream.idle", "asset.ready", "asset.live_stream_completed"}
	if !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}

	// Deleting the asset removes its files.
	if st, res := e.call(writerA, "DELETE", "/video/v1/assets/"+assetID, ""); st != 204 {
		t.Fatalf("delete asset = %d %v", st, res)
	}
	if _, err := os.Stat(filepath.Join(e.dir, assetID)); !os.IsNotExist(err) {
		t.Fatalf("recording still on disk after delete: %v", err)
	}
}

func TestFFmpegRefused(t *testing.T) {
	needFFmpeg(t)
	e := setup(t, testenv.SQLBackends(t)[0])
	ls := e.create(`{"playback_policy":"public"}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)

	refused := func(name, url string, want string, extra ...string) {
		t.Helper()
		start := time.Now()
		enc := publishFFmpeg(t, url, 30*time.Second, extra...)
		if err := enc.wait(t, 10*time.Second); err == nil {
			t.Fatalf("%s: ffmpeg exited 0, want an error", name)
		}
		t.Logf("%s: ffmpeg gave up after %v: %s", name, time.Since(start).Round(time.Millisecond), strings.TrimSpace(enc.stderr.String()))
		if want != "" && !strings.Contains(enc.stderr.String(), want) {
			t.Errorf("%s: ffmpeg's output does not show %q", name, want)
		}
	}
	refused("bad key", e.rtmpURL("not-a-key"), "")

	// The old key of a reset stream fails at once.
	st, res := e.call(writerA, "POST", "/video/v1/live-streams/"+id+"/reset-stream-key", "")
	if st != 201 {
		t.Fatalf("reset = %d %v", st, res)
	}
	refused("reset key", e.rtmpURL(key), "")
	key = data(res)["stream_key"].(string)

	if st, _ := e.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/disable", ""); st != 200 {
		t.Fatalf("disable = %d", st)
	}
	refused("disabled stream", e.rtmpURL(key), "")
	if st, _ := e.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/enable", ""); st != 200 {
		t.Fatalf("enable = %d", st)
	}

	// A codec that is not supported (Sorenson H.263 / MP3) is refused with a clear status.
	refused("unsupported codec", e.rtmpURL(key), "", "-c:v", "flv1", "-c:a", "libmp3lame")

	// A second publisher while one is live is refused; the first keeps going.
	first := publishFFmpeg(t, e.rtmpURL(key), time.Minute)
	testenv.Eventually(t, 15*time.Second, func() bool { return e.stream(id)["status"] == "active" }, "stream never became active")
	refused("second publisher", e.rtmpURL(key), "")
	select {
	case err := <-first.done:
		t.Fatalf("the first publisher stopped: %v\n%s", err, first.stderr)
	default:
	}

	// complete ends the recording at once: ENDLIST without waiting for reconnect_window, and the
	// encoder is cut off.
	asset := e.stream(id)["active_asset_id"].(string)
	if st, _ := e.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/complete", ""); st != 200 {
		t.Fatalf("complete = %d", st)
	}
	_ = first.wait(t, 10*time.Second)
	testenv.Eventually(t, 5*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(e.dir, asset, "vod.m3u8"))
		return bytes.Contains(b, []byte("#EXT-X-ENDLIST"))
	}, "no ENDLIST after complete")
	if as := e.asset(asset); as["status"] != "ready" {
		t.Fatalf("asset after complete %v", as)
	}
}
