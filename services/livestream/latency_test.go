package livestream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/testenv"
)

// clockFilter burns the wall clock into 640x360 video: bit k of floor(unix time × 10) mod
// 65536 is a white (1) or black (0) 40x40 block at x = 40k on the top rows (e2e/latency.mjs
// reads it back). The frame's time is the wall clock when ffmpeg makes it (RTCTIME).
func clockFilter() string {
	f := "settb=AVTB,setpts=RTCTIME,drawbox=x=0:y=0:w=640:h=40:color=black:t=fill"
	for k := range 16 {
		f += ",drawbox=x=" + strconv.Itoa(40*k) + ":y=0:w=40:h=40:color=white:t=fill:enable='eq(mod(floor(t*10/pow(2\\," +
			strconv.Itoa(k) + "))\\,2)\\,1)'"
	}
	return f + ",setpts=N/30/TB"
}

// publishClock publishes 640x360 30 fps H.264 with the clock burned in (a keyframe every
// second, no B-frames, x264 zerolatency) and AAC to url.
func publishClock(t *testing.T, url string, maxDur time.Duration) *encoder {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(int(maxDur.Seconds())), "-vf", clockFilter(),
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p", "-b:v", "1500k",
		"-c:a", "aac", "-b:a", "96k", "-f", "flv", url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &encoder{cmd: cmd, stderr: &stderr, done: make(chan error, 1)}
	go func() { e.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGKILL); <-e.done; e.done <- nil })
	return e
}

type latencyResult struct {
	Mode     string   `json:"mode"`
	Samples  int      `json:"samples"`
	Median   *float64 `json:"median"`
	P90      *float64 `json:"p90"`
	Max      *float64 `json:"max"`
	Errors   []string `json:"errors"`
	Switched *struct {
		From int `json:"from"`
		To   int `json:"to"`
		Top  int `json:"top"`
	} `json:"switched"`
	Levels []struct {
		Height  int `json:"height"`
		Bitrate int `json:"bitrate"`
	} `json:"levels"`
}

func needBrowser(t *testing.T) (node, dir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	dir, _ = filepath.Abs("e2e")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "hls.js"))
	_, chrErr := os.Stat("/usr/bin/chromium")
	if err != nil || modErr != nil || chrErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("browser test prerequisites missing (node %v, e2e/node_modules %v, chromium %v)", err, modErr, chrErr)
		}
		t.Skip("needs node, chromium and `npm ci` in services/livestream/e2e")
	}
	return node, dir
}

// measureLatency runs e2e/latency.mjs against a master playlist.
func measureLatency(t *testing.T, master, mode string, seconds int, throttleKbps int) latencyResult {
	t.Helper()
	node, dir := needBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	args := []string{"latency.mjs", master, mode, strconv.Itoa(seconds)}
	if throttleKbps > 0 {
		args = append(args, strconv.Itoa(throttleKbps))
	}
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("latency.mjs %s: %s %s", mode, out, stderr.String())
	var r latencyResult
	if jerr := json.Unmarshal(bytes.TrimSpace(out), &r); jerr != nil || err != nil || (r.Median == nil && throttleKbps == 0) {
		t.Fatalf("latency.mjs: %v %v", err, jerr)
	}
	return r
}

var lastSegment = regexp.MustCompile(`(?m)^seg-(\d+)\.m4s$`)

// lastSeq is the media sequence number of the last complete segment a playlist lists.
func lastSeq(t *testing.T, playlist []byte) int {
	t.Helper()
	m := lastSegment.FindAllSubmatch(playlist, -1)
	if m == nil {
		t.Fatalf("no complete segment in\n%s", playlist)
	}
	n, _ := strconv.Atoi(string(m[len(m)-1][1]))
	return n
}

func TestLowLatencyHLS(t *testing.T) {
	needFFmpeg(t)
	e := setup(t, testenv.SQLBackends(t)[0])
	ls := e.create(`{"playback_policy":"public","latency_mode":"low","reconnect_window":4,"new_asset_settings":{"playback_policy":"public"}}`)
	id, key, pid := ls["id"].(string), ls["stream_key"].(string), pids(ls)["public"]
	enc := publishClock(t, e.rtmpURL(key), 2*time.Minute)
	testenv.Eventually(t, 15*time.Second, func() bool { return e.stream(id)["status"] == "active" }, "stream never became active")
	assetID := e.stream(id)["active_asset_id"].(string)

	// The master playlist lists the source with what it is.
	st, master, _ := e.get("/stream/" + pid + ".m3u8")
	inf := regexp.MustCompile(`#EXT-X-STREAM-INF:BANDWIDTH=(\d+),AVERAGE-BANDWIDTH=(\d+),CODECS="(avc1\.[0-9a-f]{6}),mp4a\.40\.2",RESOLUTION=640x360,FRAME-RATE=(\d+\.\d+)\n` +
		regexp.QuoteMeta(pid) + `/source\.m3u8\n`).FindSubmatch(master)
	if st != 200 || inf == nil {
		t.Fatalf("master playlist %d:\n%s", st, master)
	}
	if fr, _ := strconv.ParseFloat(string(inf[4]), 64); fr < 29 || fr > 31 {
		t.Fatalf("FRAME-RATE %s, published 30", inf[4])
	}
	if bw, _ := strconv.Atoi(string(inf[1])); bw < 500_000 || bw > 6_000_000 {
		t.Fatalf("BANDWIDTH %d for a 1.5 Mbit/s encode", bw)
	}

	// The media playlist is LL-HLS.
	_, media, _ := e.get("/stream/" + pid + "/source.m3u8")
	for _, want := range []string{"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=", "#EXT-X-PART-INF:PART-TARGET=0.250",
		`#EXT-X-MAP:URI="init-0.mp4"`, "#EXT-X-PART:DURATION=", "#EXT-X-PRELOAD-HINT:TYPE=PART,URI="} {
		if !bytes.Contains(media, []byte(want)) {
			t.Fatalf("media playlist lacks %s:\n%s", want, media)
		}
	}
	// Blocking reload: the next segment's first part arrives within about a segment.
	n := lastSeq(t, media)
	t0 := time.Now()
	st, held, _ := e.get("/stream/" + pid + "/source.m3u8?_HLS_msn=" + strconv.Itoa(n+1) + "&_HLS_part=0")
	if waited := time.Since(t0); st != 200 || waited > 2500*time.Millisecond ||
		!bytes.Contains(held, []byte(`URI="seg-`+strconv.Itoa(n+1)+`.0.m4s"`)) {
		t.Fatalf("blocking reload for %d.0: %d after %v:\n%s", n+1, st, waited, held)
	}
	if st, body, _ := e.get("/stream/" + pid + "/source.m3u8?_HLS_msn=" + strconv.Itoa(n+9)); st != http.StatusBadRequest {
		t.Fatalf("_HLS_msn far ahead = %d %s, want 400", st, body)
	}
	if st, _, _ := e.get("/stream/" + pid + "/source.m3u8?_HLS_part=1"); st != http.StatusBadRequest {
		t.Fatalf("_HLS_part without _HLS_msn = %d, want 400", st)
	}
	// The hinted part is held until it exists.
	hint := regexp.MustCompile(`PRELOAD-HINT:TYPE=PART,URI="([^"]+)"`).FindSubmatch(held)[1]
	if st, body, hdr := e.get("/stream/" + pid + "/" + string(hint)); st != 200 || len(body) < 100 || hdr.Get("Content-Type") != "video/iso.segment" {
		t.Fatalf("hinted part %s = %d (%d bytes) %v", hint, st, len(body), hdr)
	}
	// ffprobe reads the variant.
	p := probeStreams(t, e.url+"/stream/"+pid+"/source.m3u8")
	if p != "aac,h264 640x360" {
		t.Fatalf("ffprobe of the source variant: %s", p)
	}

	// hls.js in low-latency mode plays within 2 s of the encoder's clock.
	r := measureLatency(t, e.url+"/stream/"+pid+".m3u8", "low", 8, 0)
	if limit := latencyLimit(t, 2); *r.Median > limit || r.Samples < 20 {
		t.Fatalf("glass-to-glass in low-latency mode: median %.1fs over %d samples (p90 %v), want ≤ %.0f s", *r.Median, r.Samples, *r.P90, limit)
	}

	// A reconnect: a discontinuity with a new init section, and parts go on after it.
	enc.kill(t)
	time.Sleep(time.Second)
	enc = publishClock(t, e.rtmpURL(key), 2*time.Minute)
	afterDisc := regexp.MustCompile(`#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init-\d+\.mp4"\n#EXT-X-PART:DURATION=[0-9.]+,URI="seg-\d+\.0\.m4s",INDEPENDENT=YES\n#EXT-X-PART`)
	testenv.Eventually(t, 15*time.Second, func() bool {
		_, b, _ := e.get("/stream/" + pid + "/source.m3u8")
		return afterDisc.Match(b)
	}, "no discontinuity followed by parts after the reconnect")
	time.Sleep(2 * time.Second)
	enc.kill(t)

	// Past the window: the recording ends with ENDLIST and plays as VOD.
	testenv.Eventually(t, 20*time.Second, func() bool { return e.stream(id)["status"] == "idle" }, "stream never went idle")
	as := e.asset(assetID)
	apid := as["playback_ids"].([]any)[0].(map[string]any)["id"].(string)
	_, vod, _ := e.get("/stream/" + apid + "/source.m3u8")
	if !bytes.Contains(vod, []byte("#EXT-X-PLAYLIST-TYPE:VOD")) || !bytes.HasSuffix(vod, []byte("#EXT-X-ENDLIST\n")) ||
		bytes.Count(vod, []byte("#EXT-X-MAP:")) != 2 || bytes.Contains(vod, []byte("EXT-X-PART")) {
		t.Fatalf("VOD playlist:\n%s", vod)
	}
	if out, err := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-i", e.url+"/stream/"+apid+".m3u8", "-f", "null", "-").CombinedOutput(); err != nil {
		t.Fatalf("decoding the VOD: %v\n%s", err, out)
	}
}

func TestReducedLatencyHLS(t *testing.T) {
	needFFmpeg(t)
	e := setup(t, testenv.SQLBackends(t)[0])
	ls := e.create(`{"playback_policy":"public","latency_mode":"reduced"}`)
	id, key, pid := ls["id"].(string), ls["stream_key"].(string), pids(ls)["public"]
	publishClock(t, e.rtmpURL(key), 2*time.Minute)
	testenv.Eventually(t, 15*time.Second, func() bool { return e.stream(id)["status"] == "active" }, "stream never became active")
	_, media, _ := e.get("/stream/" + pid + "/source.m3u8")
	if !bytes.Contains(media, []byte("#EXT-X-TARGETDURATION:1\n#EXT-X-SERVER-CONTROL:HOLD-BACK=3.000\n")) || !bytes.Contains(media, []byte("seg-0.ts")) {
		t.Fatalf("reduced media playlist:\n%s", media)
	}
	r := measureLatency(t, e.url+"/stream/"+pid+".m3u8", "reduced", 8, 0)
	if limit := latencyLimit(t, 5); *r.Median > limit || r.Samples < 20 {
		t.Fatalf("glass-to-glass in reduced mode: median %.1fs over %d samples, want ≤ %.0f s", *r.Median, r.Samples, limit)
	}
}

// latencyLimit is the glass-to-glass target (issue 13: low ≤ 2 s, reduced ≤ 5 s). On a
// saturated machine (1-minute load average above twice the CPU count: encoder, browser and
// server then wait for a CPU, and requests for 40 kB parts take 0.5–1 s) twice the target is
// asserted instead, and the test says so.
func latencyLimit(t *testing.T, target float64) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return target
	}
	load, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil || load <= 2*float64(runtime.NumCPU()) {
		return target
	}
	t.Logf("machine saturated (load %.1f on %d CPUs): asserting glass-to-glass ≤ %.0f s instead of %.0f s", load, runtime.NumCPU(), 2*target, target)
	return 2 * target
}

// probeStreams: "codec,codec WxH" of what ffprobe finds at url (codecs sorted).
func probeStreams(t *testing.T, url string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json", url).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", url, err)
	}
	var p struct {
		Streams []struct {
			CodecName     string `json:"codec_name"`
			Width, Height int
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	var names []string
	size := ""
	for _, s := range p.Streams {
		names = append(names, s.CodecName)
		if s.Width > 0 {
			size = strconv.Itoa(s.Width) + "x" + strconv.Itoa(s.Height)
		}
	}
	if len(names) == 2 && names[0] > names[1] {
		names[0], names[1] = names[1], names[0]
	}
	return strings.Join(names, ",") + " " + size
}

// TestStandardLatencyHLS: standard is unchanged (MPEG-TS segments of the configured duration,
// version 3, no server control); its
// glass-to-glass figure is measured for docs/benchmarks.md.
func TestStandardLatencyHLS(t *testing.T) {
	needFFmpeg(t)
	e := setup(t, testenv.SQLBackends(t)[0])
	ls := e.create(`{"playback_policy":"public"}`)
	id, key, pid := ls["id"].(string), ls["stream_key"].(string), pids(ls)["public"]
	publishClock(t, e.rtmpURL(key), 2*time.Minute)
	testenv.Eventually(t, 15*time.Second, func() bool { return e.stream(id)["status"] == "active" }, "stream never became active")
	st, media, _ := e.get("/stream/" + pid + "/source.m3u8")
	if !bytes.HasPrefix(media, []byte("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:")) || bytes.Contains(media, []byte("SERVER-CONTROL")) ||
		!bytes.Contains(media, []byte("seg-0.ts")) {
		t.Fatalf("standard media playlist: %d\n%s", st, media)
	}
	r := measureLatency(t, e.url+"/stream/"+pid+".m3u8", "standard", 8, 0)
	t.Logf("glass-to-glass in standard mode: median %.1fs over %d samples", *r.Median, r.Samples)
	if r.Samples < 20 {
		t.Fatalf("only %d clock samples", r.Samples)
	}
}
