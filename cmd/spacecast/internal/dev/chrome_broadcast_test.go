package dev

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/testenv"
)

// chromeEnv finds Chromium, node and services/sfu/e2e's packages (playwright-core and the
// unchanged @mux/spaces-web from npm); it skips when one is missing, except under CI.
func chromeEnv(t *testing.T) (chromium, node, dir string) {
	t.Helper()
	missing := func(msg string) {
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing(bin + " is not installed")
		}
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("chromium not found at " + chromium + " (set CHROMIUM)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node not found")
	}
	dir, _ = filepath.Abs("../../../../services/sfu/e2e")
	for _, pkg := range []string{"playwright-core", "@mux/spaces-web"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg)); err != nil {
			missing("services/sfu/e2e/node_modules/" + pkg + " missing: run `npm ci` in services/sfu/e2e")
		}
	}
	return chromium, node, dir
}

// lockedBuffer collects the browsers' log lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s + "\n")
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// chromeParticipants is e2e/broadcast.mjs running one Chromium per participant.
type chromeParticipants struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	answers chan string
	ready   chan struct{}
	exited  chan struct{}
	log     *lockedBuffer
}

type chromeJoin struct {
	Name  string `json:"name"`
	Token string `json:"token"`
	Video string `json:"video"`
	Audio string `json:"audio"`
}

// startChrome serves the test page and the npm copy of the SDK, runs broadcast.mjs and
// waits until every participant joined and published.
func startChrome(t *testing.T, backend string, joins []chromeJoin) *chromeParticipants {
	t.Helper()
	chromium, node, dir := chromeEnv(t)
	mux := http.NewServeMux()
	mux.Handle("/sdk-page/", http.StripPrefix("/sdk-page/", http.FileServer(http.Dir(filepath.Join(dir, "sdk-page")))))
	mux.Handle("/mux/", http.StripPrefix("/mux/", http.FileServer(http.Dir(filepath.Join(dir, "node_modules", "@mux", "spaces-web", "dist")))))
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)

	js, _ := json.Marshal(joins)
	cmd := exec.Command(node, "broadcast.mjs", hs.URL+"/sdk-page/index.html", backend)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium, "BROADCAST_PARTICIPANTS="+string(js))
	// Its own process group: a failed test kills node and its Chromiums together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &chromeParticipants{cmd: cmd, stdin: stdin, answers: make(chan string, 16), ready: make(chan struct{}),
		exited: make(chan struct{}), log: &lockedBuffer{}}
	cmd.Stderr = &lineWriter{c.log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			switch {
			case l == "READY":
				close(c.ready)
			case strings.HasPrefix(l, "> "):
				c.answers <- strings.TrimPrefix(l, "> ")
			default:
				c.log.line(l)
			}
		}
		_ = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
		t.Logf("browser output:\n%s", c.log)
	})
	select {
	case <-c.ready:
	case <-c.exited:
		t.Fatalf("the Chromium participants failed to join:\n%s", c.log)
	case <-time.After(180 * time.Second):
		t.Fatalf("the Chromium participants did not join within 180 s:\n%s", c.log)
	}
	return c
}

// lineWriter appends stderr to the log.
type lineWriter struct{ l *lockedBuffer }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.l.line(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// do sends one command and returns its answer.
func (c *chromeParticipants) do(t *testing.T, cmd, name string) map[string]any {
	t.Helper()
	line, _ := json.Marshal(map[string]string{"cmd": cmd, "name": name})
	if _, err := c.stdin.Write(append(line, '\n')); err != nil {
		t.Fatalf("%s %s: %v\n%s", cmd, name, err, c.log)
	}
	select {
	case a := <-c.answers:
		var out map[string]any
		if err := json.Unmarshal([]byte(a), &out); err != nil || out["error"] != nil {
			t.Fatalf("%s %s: %s (%v)", cmd, name, a, err)
		}
		return out
	case <-c.exited:
		t.Fatalf("the Chromium participants exited:\n%s", c.log)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s %s: no answer in 60 s", cmd, name)
	}
	return nil
}

// broadcastStates is what the SDK's BroadcastStateChanged told name's page so far.
func (c *chromeParticipants) broadcastStates(t *testing.T, name string) []bool {
	t.Helper()
	var out []bool
	for _, v := range c.do(t, "events", name)["broadcast"].([]any) {
		out = append(out, v.(bool))
	}
	return out
}

// ffmpegChildren counts this process's ffmpeg children (in dev mode the compositor's
// decoders and encoder are children of the test process).
func ffmpegChildren(t *testing.T) int {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	me := strconv.Itoa(os.Getpid())
	n := 0
	for _, f := range stats {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(raw)
		lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if lp < 0 || rp < lp {
			continue
		}
		fields := strings.Fields(s[rp+1:])
		if s[lp+1:rp] == "ffmpeg" && len(fields) > 1 && fields[1] == me {
			n++
		}
	}
	return n
}

// chromeCase is one broadcast of Chromium participants. Each participant's colour must be
// found at its points of the 1280x720 picture.
type chromeCase struct {
	layout string
	parts  []composedParticipant
	quiet  map[string]bool // participants whose tone is 40 dB down (not speaking)
	points map[string][][2]int
	// bare: points (of the layout, not the participants' pictures) that must be no
	// participant's colour.
	bare [][2]int
	// idle: everyone leaves instead of a stop; the space going idle must stop the broadcast.
	idle bool
}

// TestDevBroadcastChromium: participants are headless Chromiums joined through the unchanged
// @mux/spaces-web (MUX_SPACES_BACKEND_URL = the dev server's /spaces), each publishing a fake
// camera of its own solid colour and a fake microphone of its own sine tone. A broadcast
// started through the API takes the live stream connected → recording → active (webhooks);
// the pages get the SDK's BroadcastStateChanged(true); the HLS is H.264 1280x720 + AAC with
// each participant's colour in its tile and the tones in the mix. gallery (2 and 4): the last
// participant leaves, its tile goes while the RTMP session goes on, stop → the pages get
// BroadcastStateChanged(false), the live stream completes and its one asset plays as VOD.
// active-speaker: the loud participant (joined second) takes the large tile. crop: the
// pictures fill their cells (no bars). Both then end by everyone leaving: the space goes
// idle, which stops the broadcast, ends the compositor's ffmpegs and completes the live stream.
func TestDevBroadcastChromium(t *testing.T) {
	red := composedParticipant{name: "red", colour: "0xE02020", rgb: [3]int{0xE0, 0x20, 0x20}, freq: 440}
	blue := composedParticipant{name: "blue", colour: "0x2040E0", rgb: [3]int{0x20, 0x40, 0xE0}, freq: 1000}
	green := composedParticipant{name: "green", colour: "0x20C040", rgb: [3]int{0x20, 0xC0, 0x40}, freq: 1750}
	yellow := composedParticipant{name: "yellow", colour: "0xE0E020", rgb: [3]int{0xE0, 0xE0, 0x20}, freq: 2600}
	cases := map[string]chromeCase{
		// Two 4:3 pictures fitted in 628x704 cells: bars above and below (y 40 is one).
		"gallery-2": {layout: "gallery", parts: []composedParticipant{red, blue},
			points: map[string][][2]int{"red": {{320, 360}}, "blue": {{960, 360}}},
			bare:   [][2]int{{320, 40}, {960, 690}}},
		"gallery-4": {layout: "gallery", parts: []composedParticipant{red, blue, green, yellow},
			points: map[string][][2]int{"red": {{320, 180}}, "blue": {{960, 180}}, "green": {{320, 540}}, "yellow": {{960, 540}}}},
		// Main area 1280x568 at the top (cropped to fill), strip tile 240x136 at (520, 576).
		// blue joins first, so it would be the main tile if the speaker were not followed.
		"active-speaker": {layout: "active-speaker", parts: []composedParticipant{blue, red}, quiet: map[string]bool{"blue": true},
			points: map[string][][2]int{"red": {{640, 284}, {40, 40}, {1240, 540}}, "blue": {{640, 644}}}, idle: true},
		// The same cells as gallery-2, filled: the bar rows carry the pictures.
		"crop": {layout: "crop", parts: []composedParticipant{red, blue},
			points: map[string][][2]int{"red": {{320, 360}, {320, 40}, {100, 690}}, "blue": {{960, 360}, {960, 690}, {1200, 40}}}, idle: true},
	}
	for _, name := range []string{"gallery-2", "gallery-4", "active-speaker", "crop"} {
		t.Run(name, func(t *testing.T) {
			if only := os.Getenv("SPACECAST_CHROMIUM_CASES"); only != "" && !strings.Contains(","+only+",", ","+name+",") {
				t.Skip("not in SPACECAST_CHROMIUM_CASES")
			}
			testBroadcastChromium(t, cases[name])
		})
	}
}

func testBroadcastChromium(t *testing.T, tc chromeCase) {
	chromeEnv(t)
	t0 := time.Now()
	dir := t.TempDir()
	for _, p := range tc.parts {
		// Chromium loops the files; 320x240 at 15 fps keeps 4 tabs affordable.
		ffmpegRun(t, "-f", "lavfi", "-i", "color=c="+p.colour+":s=320x240:r=15", "-t", "2", "-pix_fmt", "yuv420p",
			filepath.Join(dir, p.name+".y4m"))
		vol := "0.5"
		if tc.quiet[p.name] {
			vol = "0.005"
		}
		ffmpegRun(t, "-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=48000,volume=%s", p.freq, vol), "-t", "10",
			"-ac", "1", filepath.Join(dir, p.name+".wav"))
	}

	httpAddr, kafkaAddr := freeAddr(t), freeAddr(t)
	dataDir := t.TempDir()
	p := startDev(t, dataDir, httpAddr, kafkaAddr)
	defer p.stop(t)
	base := "http://" + httpAddr

	recv := subscribeHooks(t, base, "video.live_stream.connected", "video.live_stream.recording", "video.live_stream.active", "video.live_stream.idle")
	fx := newBroadcastFixture(t, base)
	lsID, pid, lsStatus, space, bc := fx.lsID, fx.playbackID, fx.lsStatus, fx.space, fx.broadcasts
	var bid string
	testenv.Eventually(t, 10*time.Second, func() bool {
		st, res := api(t, "POST", bc, `{"live_stream_id":"`+lsID+`","resolution":"1280x720","layout":"`+tc.layout+`"}`)
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

	_, res := api(t, "POST", base+"/system/v1/signing-keys", "")
	sk := res["data"].(map[string]any)
	var joins []chromeJoin
	for _, pt := range tc.parts {
		tok, err := spacejwt.Sign([]byte(sk["private_key"].(string)), sk["id"].(string),
			spacejwt.SignClaims{Audience: spacejwt.AudienceRT, Subject: space, ParticipantID: pt.name, TTL: 30 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		joins = append(joins, chromeJoin{Name: pt.name, Token: tok, Video: filepath.Join(dir, pt.name+".y4m"), Audio: filepath.Join(dir, pt.name+".wav")})
	}
	chrome := startChrome(t, "ws://"+httpAddr+"/spaces", joins)
	t.Logf("%d Chromium participants joined and published after %v", len(tc.parts), time.Since(t0).Round(time.Second))
	testenv.Eventually(t, 15*time.Second, func() bool {
		_, res := api(t, "GET", base+"/video/v1/spaces/"+space, "")
		return res["data"].(map[string]any)["status"] == "active"
	}, "space never became active")
	// Every camera and microphone reached the SFU (each page knows the others' 2 tracks)
	// before the broadcast starts, so the tiles are in join order.
	for _, pt := range tc.parts {
		testenv.Eventually(t, 30*time.Second, func() bool {
			known, _ := chrome.do(t, "tracks", pt.name)["tracks"].(map[string]any)
			for _, other := range tc.parts {
				if n, _ := known[other.name].(float64); other.name != pt.name && n != 2 {
					return false
				}
			}
			return true
		}, "%s's page does not know every other participant's camera and microphone", pt.name)
	}
	for _, pt := range tc.parts {
		if got := chrome.broadcastStates(t, pt.name); len(got) != 0 {
			t.Fatalf("%s's page got BroadcastStateChanged %v before the broadcast started", pt.name, got)
		}
	}
	if st, res := api(t, "POST", bc+"/"+bid+"/start", ""); st != 200 {
		t.Fatalf("start = %d %v", st, res)
	}
	testenv.Eventually(t, 60*time.Second, func() bool { return lsStatus() == "active" },
		"the live stream never became active from the compositor:\n%s", p.out)
	lsHooks := func() string {
		var out []string
		recv.mu.Lock()
		defer recv.mu.Unlock()
		for _, b := range recv.got {
			if obj, _ := b["object"].(map[string]any); obj["id"] == lsID {
				out = append(out, strings.TrimPrefix(b["type"].(string), "video.live_stream."))
			}
		}
		return strings.Join(out, ",")
	}
	testenv.Eventually(t, 20*time.Second, func() bool { return lsHooks() == "connected,recording,active" },
		"live stream webhooks %q, want connected,recording,active", lsHooks())
	for _, pt := range tc.parts {
		testenv.Eventually(t, 20*time.Second, func() bool {
			got := chrome.broadcastStates(t, pt.name)
			return len(got) == 1 && got[0]
		}, "%s's page never got BroadcastStateChanged(true)", pt.name)
	}
	if n := ffmpegChildren(t); n < 2 {
		t.Fatalf("%d ffmpeg children while the broadcast runs, want the compositor's decoders and encoder", n)
	}

	hls := base + "/stream/" + pid + ".m3u8"
	testenv.Eventually(t, 30*time.Second, func() bool {
		r, err := http.Get(hls)
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	}, "no HLS playlist")
	probeH264AAC(t, hls, 1280, 720)

	// The picture: every participant's colour at its points (Chromium's first frames, and
	// the active speaker's detection, take a few seconds).
	var bad []string
	deadline := time.Now().Add(45 * time.Second)
	for {
		frame := grabFrame(t, hls, 1280, 720)
		bad = bad[:0]
		for _, pt := range tc.parts {
			for _, xy := range tc.points[pt.name] {
				if got := frame(xy[0], xy[1]); !nearRGB(got, pt.rgb) {
					bad = append(bad, fmt.Sprintf("%s at %v is %v", pt.name, xy, got))
				}
			}
		}
		for _, xy := range tc.bare {
			for _, pt := range tc.parts {
				if got := frame(xy[0], xy[1]); nearRGB(got, pt.rgb) {
					bad = append(bad, fmt.Sprintf("%v shows %s's colour (letterbox expected)", xy, pt.name))
				}
			}
		}
		if len(bad) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, pt := range tc.parts {
				t.Logf("%s sends %v", pt.name, chrome.do(t, "rtp", pt.name)["sent"])
			}
			t.Fatalf("the composed picture is wrong:\n%s", strings.Join(bad, "\n"))
		}
		time.Sleep(time.Second)
	}
	t.Logf("every tile right after %v", time.Since(t0).Round(time.Second))

	var loud []composedParticipant
	for _, pt := range tc.parts {
		if !tc.quiet[pt.name] {
			loud = append(loud, pt)
		}
	}
	checkTones(t, hls, loud)

	if tc.idle {
		if n := ffmpegChildren(t); n < 2 {
			t.Fatalf("%d ffmpeg children before the space went idle", n)
		}
		for _, pt := range tc.parts {
			chrome.do(t, "leave", pt.name)
		}
		testenv.Eventually(t, 20*time.Second, func() bool {
			_, res := api(t, "GET", base+"/video/v1/spaces/"+space, "")
			return res["data"].(map[string]any)["status"] == "idle"
		}, "the space never went idle")
		testenv.Eventually(t, 20*time.Second, func() bool { return bStatus() == "idle" }, "the space going idle did not stop the broadcast")
		checkOneVOD(t, base, lsID, dataDir, lsStatus)
		testenv.Eventually(t, 20*time.Second, func() bool { return ffmpegChildren(t) == 0 },
			"%d ffmpeg children left after the broadcast stopped", ffmpegChildren(t))
	} else {
		gone := tc.parts[len(tc.parts)-1]
		chrome.do(t, "leave", gone.name)
		waitPicture(t, hls, 1280, 720, tc.parts[:len(tc.parts)-1], []composedParticipant{gone}, lsStatus, 30*time.Second)
		if st, res := api(t, "POST", bc+"/"+bid+"/stop", ""); st != 200 {
			t.Fatalf("stop = %d %v", st, res)
		}
		for _, pt := range tc.parts[:len(tc.parts)-1] {
			testenv.Eventually(t, 20*time.Second, func() bool {
				got := chrome.broadcastStates(t, pt.name)
				return len(got) == 2 && got[0] && !got[1]
			}, "%s's page never got BroadcastStateChanged(false)", pt.name)
		}
		checkOneVOD(t, base, lsID, dataDir, lsStatus)
		testenv.Eventually(t, 20*time.Second, func() bool { return ffmpegChildren(t) == 0 },
			"%d ffmpeg children left after the broadcast stopped", ffmpegChildren(t))
	}
	testenv.Eventually(t, 20*time.Second, func() bool { return strings.HasSuffix(lsHooks(), ",idle") },
		"live stream webhooks %q, want idle last", lsHooks())
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if recv.bad != 0 {
		t.Fatalf("%d deliveries failed signature verification", recv.bad)
	}
	t.Logf("%s with %d Chromium participants passed in %v", tc.layout, len(tc.parts), time.Since(t0).Round(time.Second))
}
