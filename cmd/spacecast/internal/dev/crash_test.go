package dev

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/sfu/spacesclient"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// spacecastBinary builds the spacecast command once per test run: the crash tests kill a real
// process, which an in-process dev mode cannot stand in for.
func spacecastBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "spacecast-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "spacecast")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/spacecast/spacecast/cmd/spacecast")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("building spacecast: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

// devChild is `spacecast dev` running as a child process.
type devChild struct {
	cmd *exec.Cmd
	out *syncBuffer
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

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startDevChild(t *testing.T, dir, httpAddr, kafkaAddr, rtmpAddr string) *devChild {
	t.Helper()
	cmd := exec.Command(spacecastBinary(t), "dev", "--data-dir", dir, "--http-addr", httpAddr, "--kafka-addr", kafkaAddr,
		"--rtmp-addr", rtmpAddr, "--rtmps-addr=", "--sfu-udp-port", "0", "--sfu-tcp-port", "-1", "--access-log=false")
	cmd.Env = append(os.Environ(), "SPACECAST_BOOTSTRAP_TOKEN_ID=e2e-admin", "SPACECAST_BOOTSTRAP_TOKEN_SECRET=e2e-admin-secret-123")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &devChild{cmd: cmd, out: out}
	t.Cleanup(func() { c.kill() })
	waitReady(t, httpAddr)
	return c
}

// kill ends the process with SIGKILL: nothing of it runs after this, as after a crash.
func (c *devChild) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

// vodDuration sums the EXTINF durations of a recording's VOD playlist.
func vodDuration(t *testing.T, path string) (float64, bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("VOD playlist: %v", err)
	}
	defer f.Close()
	var sum float64
	ended := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "#EXTINF:"); ok {
			v, _, _ = strings.Cut(v, ",")
			d, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("EXTINF %q: %v", line, err)
			}
			sum += d
		}
		if line == "#EXT-X-ENDLIST" {
			ended = true
		}
	}
	return sum, ended
}

// TestDevModeKill9 kills the dev mode (SIGKILL) while ffmpeg publishes to a live stream and a
// participant is in a space, then starts it again on the same data directory: the embedded
// Redis is gone with the process, so the sweeps bring both back to truthful states. The live
// stream goes disconnected and then idle once its reconnect_window has run, its recording
// becomes a ready asset whose duration is the media written before the crash (not 0) and that
// can be deleted; the space goes idle within 15 s of the restart and can be deleted.
func TestDevModeKill9(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ffmpeg is not installed; CI must install it")
		}
		t.Skip("ffmpeg is not installed")
	}
	dir := t.TempDir()
	httpAddr, kafkaAddr, rtmpAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	p := startDevChild(t, dir, httpAddr, kafkaAddr, rtmpAddr)
	base := "http://" + httpAddr

	// A participant in a space.
	_, body := api(t, "POST", base+"/system/v1/signing-keys", "")
	key, _ := body["data"].(map[string]any)
	_, body = api(t, "POST", base+"/video/v1/spaces", "{}")
	spaceID := body["data"].(map[string]any)["id"].(string)
	tok, err := spacejwt.Sign([]byte(key["private_key"].(string)), key["id"].(string),
		spacejwt.SignClaims{Audience: spacejwt.AudienceRT, Subject: spaceID, ParticipantID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := spacesclient.Join(ctx, "ws://"+httpAddr+"/spaces", tok, spacesclient.Options{LoopbackOnly: true})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	defer c.Close()
	spaceStatus := func() string {
		_, b := api(t, "GET", base+"/video/v1/spaces/"+spaceID, "")
		d, _ := b["data"].(map[string]any)
		s, _ := d["status"].(string)
		return s
	}
	testenv.Eventually(t, 15*time.Second, func() bool { return spaceStatus() == "active" }, "space never became active")

	// ffmpeg publishing to a live stream with a 5 s reconnect window.
	const window = 5
	st, res := api(t, "POST", base+"/video/v1/live-streams", `{"playback_policy":"public","reconnect_window":`+strconv.Itoa(window)+`}`)
	if st != 201 {
		t.Fatalf("create live stream = %d %v", st, res)
	}
	ls := res["data"].(map[string]any)
	lsID, streamKey := ls["id"].(string), ls["stream_key"].(string)
	ff := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "60", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
		"-f", "flv", "rtmp://"+rtmpAddr+"/app/"+streamKey)
	if err := ff.Start(); err != nil {
		t.Fatal(err)
	}
	defer ff.Process.Kill() //nolint:errcheck
	stream := func() map[string]any {
		_, b := api(t, "GET", base+"/video/v1/live-streams/"+lsID, "")
		d, _ := b["data"].(map[string]any)
		return d
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return stream()["status"] == "active" }, "live stream never became active")
	assetID, _ := stream()["active_asset_id"].(string)
	if assetID == "" {
		t.Fatal("active live stream without active_asset_id")
	}
	time.Sleep(5 * time.Second) // a few segments on disk

	p.kill()
	_ = ff.Process.Kill()
	_ = ff.Wait()
	c.Close()
	killed := time.Now()

	startDevChild(t, dir, httpAddr, kafkaAddr, rtmpAddr)
	restarted := time.Now()

	testenv.Eventually(t, 30*time.Second, func() bool { return spaceStatus() == "idle" }, "space still %q after the restart", spaceStatus())
	t.Logf("space idle %.1f s after the restart (%.1f s after kill -9)", time.Since(restarted).Seconds(), time.Since(killed).Seconds())
	if st, _ := api(t, "DELETE", base+"/video/v1/spaces/"+spaceID, ""); st != 204 {
		t.Fatalf("delete space after recovery = %d, want 204", st)
	}

	testenv.Eventually(t, time.Duration(window+30)*time.Second, func() bool { return stream()["status"] == "idle" },
		"live stream still %q after the restart", stream()["status"])
	t.Logf("live stream idle %.1f s after the restart (reconnect_window %d s)", time.Since(restarted).Seconds(), window)
	asset := func() map[string]any {
		_, b := api(t, "GET", base+"/video/v1/assets/"+assetID, "")
		d, _ := b["data"].(map[string]any)
		return d
	}
	testenv.Eventually(t, 15*time.Second, func() bool { return asset()["status"] == "ready" }, "asset still %v", asset()["status"])
	played, ended := vodDuration(t, filepath.Join(dir, "recordings", assetID, "vod.m3u8"))
	if !ended {
		t.Fatal("the recovered recording's VOD playlist has no EXT-X-ENDLIST")
	}
	dur, _ := asset()["duration"].(float64)
	if played < 3 || dur < played-2.1 || dur > played+2.1 {
		t.Fatalf("asset duration %.2f s, VOD playlist %.2f s: want the media written before the crash", dur, played)
	}
	if st, _ := api(t, "DELETE", base+"/video/v1/assets/"+assetID, ""); st != 204 {
		t.Fatalf("delete recovered asset = %d, want 204", st)
	}
	if m := regexp.MustCompile(`panic:`).FindString(p.out.String()); m != "" {
		t.Fatalf("the first dev process panicked:\n%s", p.out)
	}
}
