package livestream_test

import (
	"bytes"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/livestream"
)

// publishSize publishes a w×h 30 fps H.264 test pattern (keyframe every second) at vbitrate
// and AAC to url.
func publishSize(t *testing.T, url string, w, h int, vbitrate string) *encoder {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size="+strconv.Itoa(w)+"x"+strconv.Itoa(h)+":rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "120",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p",
		"-b:v", vbitrate, "-maxrate", vbitrate, "-bufsize", vbitrate, "-c:a", "aac", "-b:a", "96k", "-f", "flv", url)
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

var streamInf = regexp.MustCompile(`#EXT-X-STREAM-INF:BANDWIDTH=(\d+),AVERAGE-BANDWIDTH=\d+,CODECS="(avc1\.[0-9a-f]{6},mp4a\.40\.2)",RESOLUTION=(\d+x\d+),FRAME-RATE=([0-9.]+)\n(\S+)\n`)

func TestAdaptiveLadder(t *testing.T) {
	needFFmpeg(t)
	rdb, prefix := testenv.Redis(t)
	e := startWith(t, testenv.OpenSQL(t, testenv.SQLBackends(t)[0]), testenv.Kafka(t), rdb, prefix, t.TempDir(),
		func(c *livestream.Config) { c.Transcode = true })
	ls := e.create(`{"playback_policy":"public","reconnect_window":2,"new_asset_settings":{"playback_policy":"public","max_resolution_tier":"1080p"}}`)
	if ls["new_asset_settings"].(map[string]any)["max_resolution_tier"] != "1080p" {
		t.Fatalf("new_asset_settings %v", ls["new_asset_settings"])
	}
	id, key, pid := ls["id"].(string), ls["stream_key"].(string), pids(ls)["public"]
	enc := publishSize(t, e.rtmpURL(key), 960, 540, "2500k")
	testenv.Eventually(t, 15*time.Second, func() bool { return e.stream(id)["status"] == "active" }, "stream never became active")
	assetID := e.stream(id)["active_asset_id"].(string)

	// The master lists the source and the two rungs below 540p, each truthful.
	var master []byte
	testenv.Eventually(t, 30*time.Second, func() bool {
		_, master, _ = e.get("/stream/" + pid + ".m3u8")
		return len(streamInf.FindAllSubmatch(master, -1)) == 3
	}, "the master playlist never listed the source and two rungs")
	t.Logf("master:\n%s", master)
	want := []struct{ res, uri, size string }{{"960x540", pid + "/source.m3u8", "960x540"}, {"854x480", pid + "/480p.m3u8", "854x480"},
		{"640x360", pid + "/360p.m3u8", "640x360"}}
	var bws []int
	for i, m := range streamInf.FindAllSubmatch(master, -1) {
		if string(m[3]) != want[i].res || string(m[5]) != want[i].uri {
			t.Fatalf("variant %d: %s %s, want %s %s", i, m[3], m[5], want[i].res, want[i].uri)
		}
		if fr, _ := strconv.ParseFloat(string(m[4]), 64); fr < 29 || fr > 31 {
			t.Fatalf("variant %d FRAME-RATE %s", i, m[4])
		}
		bw, _ := strconv.Atoi(string(m[1]))
		bws = append(bws, bw)
		// ffprobe reads each variant: H.264 of the listed size, and AAC.
		if got := probeStreams(t, e.url+"/stream/"+string(m[5])); got != "aac,h264 "+want[i].size {
			t.Fatalf("ffprobe of %s: %s", m[5], got)
		}
	}
	if bws[0] <= bws[1] || bws[1] <= bws[2] || bws[2] < 300_000 {
		t.Fatalf("BANDWIDTH %v: want decreasing, the 360p rung near its 600 kbit/s", bws)
	}
	// Keyframe-aligned: the rungs cut their segments where the source does.
	// (Both playlists must hold two segments first: on a quick machine the check can come
	// right after the first one.)
	var a, b []string
	testenv.Eventually(t, 20*time.Second, func() bool {
		_, src, _ := e.get("/stream/" + pid + "/source.m3u8")
		_, r360, _ := e.get("/stream/" + pid + "/360p.m3u8")
		a, b = extinfs(src), extinfs(r360)
		return len(a) >= 2 && len(b) >= 2
	}, "source and 360p playlists never held two segments each")
	if a[0] != b[0] {
		t.Fatalf("segment durations: source %v, 360p %v", a, b)
	}

	// hls.js switches down when the network is throttled.
	r := measureLatency(t, e.url+"/stream/"+pid+".m3u8", "standard", 2, 900)
	if len(r.Levels) != 3 || r.Switched == nil || r.Switched.To >= r.Switched.From {
		t.Fatalf("hls.js levels %v, switch %+v", r.Levels, r.Switched)
	}

	// The recording keeps the ladder: the asset's master lists the rungs, ended.
	enc.kill(t)
	testenv.Eventually(t, 20*time.Second, func() bool { return e.stream(id)["status"] == "idle" }, "stream never went idle")
	apid := e.asset(assetID)["playback_ids"].([]any)[0].(map[string]any)["id"].(string)
	_, am, _ := e.get("/stream/" + apid + ".m3u8")
	if n := len(streamInf.FindAllSubmatch(am, -1)); n != 3 {
		t.Fatalf("asset master has %d variants:\n%s", n, am)
	}
	_, vod, _ := e.get("/stream/" + apid + "/480p.m3u8")
	if !bytes.HasSuffix(vod, []byte("#EXT-X-ENDLIST\n")) {
		t.Fatalf("480p VOD playlist not ended:\n%s", vod)
	}
	if out, err := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-i", e.url+"/stream/"+apid+"/480p.m3u8", "-f", "null", "-").CombinedOutput(); err != nil {
		t.Fatalf("decoding the 480p VOD: %v\n%s", err, out)
	}
}

// extinfs lists a playlist's segment durations, rounded to 0.1 s.
func extinfs(b []byte) []string {
	var out []string
	for _, m := range regexp.MustCompile(`#EXTINF:([0-9.]+)`).FindAllSubmatch(b, -1) {
		f, _ := strconv.ParseFloat(string(m[1]), 64)
		out = append(out, strconv.FormatFloat(f, 'f', 1, 64))
	}
	return out[:min(len(out), 3)]
}
