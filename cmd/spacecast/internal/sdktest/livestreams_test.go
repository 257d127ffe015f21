package sdktest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/testenv"
)

// lsCall is one admin REST call to the dev mode, answering the status and the decoded "data".
func lsCall(t *testing.T, d devEnv, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, d.Base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(adminID, adminSecret)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Data map[string]any `json:"data"`
	}
	raw, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(raw, &out)
	return res.StatusCode, out.Data
}

// lsRecord makes n recordings: n live streams (new_asset_settings public, reconnect_window 0),
// each published to by ffmpeg for about 3 s over RTMP; it returns the ready assets' ids.
func lsRecord(t *testing.T, d devEnv, n int) []string {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("needs ffmpeg")
	}
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		st, ls := lsCall(t, d, "POST", "/video/v1/live-streams",
			`{"playback_policies":["public"],"reconnect_window":0,"new_asset_settings":{"playback_policies":["public"]}}`)
		if st != 201 {
			t.Fatalf("create live stream = %d %v", st, ls)
		}
		ids[i] = ls["id"].(string)
		wg.Add(1)
		go func(key string) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
				"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
				"-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
				"-f", "flv", "rtmp://"+d.RTMPAddr+"/app/"+key).CombinedOutput()
			if err != nil {
				errs <- &ffmpegError{err: err, out: string(out)}
			}
		}(ls["stream_key"].(string))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	assets := make([]string, n)
	for i, id := range ids {
		testenv.Eventually(t, 30*time.Second, func() bool {
			_, ls := lsCall(t, d, "GET", "/video/v1/live-streams/"+id, "")
			recent, _ := ls["recent_asset_ids"].([]any)
			if ls["status"] != "idle" || len(recent) != 1 {
				return false
			}
			assets[i] = recent[0].(string)
			_, a := lsCall(t, d, "GET", "/video/v1/assets/"+assets[i], "")
			return a["status"] == "ready"
		}, "the recording of live stream %s never became ready", id)
	}
	return assets
}

type ffmpegError struct {
	err error
	out string
}

func (e *ffmpegError) Error() string { return "ffmpeg: " + e.err.Error() + "\n" + e.out }

// TestLiveStreamsSDK runs js/livestreams.mjs: mux.video.liveStreams create/retrieve/update/
// list (for await over pages)/resetStreamKey/enable/disable/complete/delete and their playback
// ids, mux.video.playbackIds.retrieve, mux.video.assets list/retrieve/delete, playback ids and
// static renditions (createStaticRendition/deleteStaticRendition, new-asset-settings ones)
// on recordings ffmpeg made over RTMP, and typed errors.
func TestLiveStreamsSDK(t *testing.T) {
	d := startDev(t, nil)
	assets := lsRecord(t, d, 3)
	runScript(t, d, "livestreams.mjs", map[string]string{"RECORDED_ASSETS": strings.Join(assets, ",")})
}
