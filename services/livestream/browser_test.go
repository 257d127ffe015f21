package livestream_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/testenv"
)

// TestBrowserPlaysHLS: headless Chromium plays a live stream published by ffmpeg with hls.js,
// from a page on another origin (the playlist and segments must carry CORS headers), and
// decodes its video.
func TestBrowserPlaysHLS(t *testing.T) {
	needFFmpeg(t)
	node, err := exec.LookPath("node")
	dir, _ := filepath.Abs("e2e")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "hls.js"))
	_, chrErr := os.Stat("/usr/bin/chromium")
	if err != nil || modErr != nil || chrErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("browser test prerequisites missing (node %v, e2e/node_modules %v, chromium %v)", err, modErr, chrErr)
		}
		t.Skip("needs node, chromium and `npm ci` in services/livestream/e2e")
	}
	e := setup(t, testenv.SQLBackends(t)[0])
	ls := e.create(`{"playback_policy":"public"}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	publishFFmpeg(t, e.rtmpURL(key), time.Minute)
	testenv.Eventually(t, 15*time.Second, func() bool { return e.stream(id)["status"] == "active" }, "stream never became active")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "hls.mjs", e.url+"/stream/"+pids(ls)["public"]+".m3u8", "2")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	t.Logf("browser:\n%s", out)
	if err != nil {
		t.Fatalf("hls.js in Chromium did not play the stream: %v", err)
	}
}
