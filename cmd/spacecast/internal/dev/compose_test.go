package dev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/sfu/spacesclient"
)

// composedParticipant is one participant's test pattern: a solid colour and a sine tone.
type composedParticipant struct {
	name   string
	colour string // lavfi colour
	rgb    [3]int // expected in its tile
	freq   int    // Hz
}

func ffmpegRun(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-y", "-nostdin"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

// cameraLayers are the simulcast layers a test camera sends (the SFU's q/h/f of a 1280x720
// capture), each with a badge of its own colour in the top left, so that a frame shows which
// layer the compositor drew.
var cameraLayers = []struct {
	rid   string
	size  string
	badge string
	rgb   [3]int
}{
	{"q", "320x180", "0x101010", [3]int{0x10, 0x10, 0x10}},
	{"h", "640x360", "0xF0F0F0", [3]int{0xF0, 0xF0, 0xF0}},
	{"f", "1280x720", "0x808080", [3]int{0x80, 0x80, 0x80}},
}

// makeCameraLayers encodes colour's layers as base+"-"+rid+".ivf" (VP8, 1 s, sent looping,
// a keyframe every 15 frames).
func makeCameraLayers(t *testing.T, base, colour string) {
	t.Helper()
	for _, l := range cameraLayers {
		ffmpegRun(t, "-f", "lavfi", "-i", "color=c="+colour+":s="+l.size+":r=30,drawbox=x=iw/16:y=ih/8:w=iw/4:h=ih/4:t=fill:color="+l.badge,
			"-t", "1", "-c:v", "libvpx", "-b:v", "300k", "-g", "15", "-deadline", "realtime", "-cpu-used", "8", "-f", "ivf", base+"-"+l.rid+".ivf")
	}
}

// publishSimulcastCamera publishes a camera as a browser sends one with RIDs: one transceiver
// whose layers q, h and f each send *base+"-"+rid+".ivf" at 30 fps, looping (a new *base
// starts at once), every packet with the mid and rid header extensions.
func publishSimulcastCamera(ctx context.Context, t *testing.T, c *spacesclient.Client, base *atomic.Pointer[string]) {
	t.Helper()
	tid := spacesclient.NewTrackID()
	var layers []*webrtc.TrackLocalStaticRTP
	for _, l := range cameraLayers {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "camera", tid, webrtc.WithRTPStreamID(l.rid))
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, tr)
	}
	pub, err := c.PublishSimulcast(ctx, layers, "camera")
	if err != nil {
		t.Fatalf("publish simulcast camera: %v", err)
	}
	for _, l := range layers {
		go sendLayerIVF(ctx, base, pub, l) //nolint:errcheck
	}
}

func sendLayerIVF(ctx context.Context, base *atomic.Pointer[string], pub *spacesclient.Publication, track *webrtc.TrackLocalStaticRTP) error {
	pk := rtp.NewPacketizer(1200, 96, 0, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewRandomSequencer(), 90000)
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for {
		prefix := *base.Load()
		f, err := os.Open(prefix + "-" + track.RID() + ".ivf")
		if err != nil {
			return err
		}
		r, _, err := ivfreader.NewWith(f)
		if err != nil {
			f.Close()
			return err
		}
		for *base.Load() == prefix {
			frame, _, err := r.ParseNextFrame()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return err
			}
			for _, p := range pk.Packetize(frame, 3000) {
				if err := pub.SimulcastExtensions.Set(p, pub.Mid, track.RID()); err != nil {
					f.Close()
					return err
				}
				if err := track.WriteRTP(p); err != nil {
					f.Close()
					return err
				}
			}
			select {
			case <-ctx.Done():
				f.Close()
				return nil
			case <-tick.C:
			}
		}
		f.Close()
	}
}

// sendOgg writes the Opus file's packets to track every 20 ms, looping, until ctx ends.
func sendOgg(ctx context.Context, path string, track *webrtc.TrackLocalStaticSample) error {
	for {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		r, _, err := oggreader.NewWith(f)
		if err != nil {
			f.Close()
			return err
		}
		tick := time.NewTicker(20 * time.Millisecond)
		for {
			payload, hdr, err := r.ParseNextPage()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				tick.Stop()
				return err
			}
			if _, isHeader := hdr.HeaderType(payload); isHeader || len(payload) == 0 {
				continue
			}
			if err := track.WriteSample(media.Sample{Data: payload, Duration: 20 * time.Millisecond}); err != nil {
				f.Close()
				tick.Stop()
				return err
			}
			select {
			case <-ctx.Done():
				f.Close()
				tick.Stop()
				return nil
			case <-tick.C:
			}
		}
		tick.Stop()
		f.Close()
	}
}

// goertzel is the power of freq in mono samples at rate, normalised by the signal's power.
func goertzel(samples []float64, rate, freq float64) float64 {
	k := 2 * math.Cos(2*math.Pi*freq/rate)
	var s1, s2, energy float64
	for _, x := range samples {
		s := x + k*s1 - s2
		s2, s1 = s1, s
		energy += x * x
	}
	p := s1*s1 + s2*s2 - k*s1*s2
	if energy == 0 {
		return 0
	}
	return p / (energy * float64(len(samples)) / 2)
}

// TestDevBroadcastComposed: participants joined with the Go client each publish a solid
// colour as a simulcast camera (VP8 layers q, h, f, each with its own badge) and a sine tone
// (Opus); a broadcast started through the API has the SFU's compositor publish to the live
// stream, whose HLS is H.264 at the requested resolution plus AAC, shows one tile per
// participant in its colour where the layout puts it, drawn from the layer its tile size
// needs (h: the tiles are about 640x360, not the smallest layer's 320x180), and mixes their
// tones; stop completes the live stream.
func TestDevBroadcastComposed(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ffmpeg is not installed; CI must install it")
		}
		t.Skip("ffmpeg is not installed")
	}
	all := []composedParticipant{
		{name: "red", colour: "0xE02020", rgb: [3]int{0xE0, 0x20, 0x20}, freq: 440},
		{name: "blue", colour: "0x2040E0", rgb: [3]int{0x20, 0x40, 0xE0}, freq: 1000},
		{name: "green", colour: "0x20C040", rgb: [3]int{0x20, 0xC0, 0x40}, freq: 1750},
		{name: "yellow", colour: "0xE0E020", rgb: [3]int{0xE0, 0xE0, 0x20}, freq: 2600},
	}
	// The participants' media, made once for every case.
	media := t.TempDir()
	for _, p := range all {
		makeCameraLayers(t, filepath.Join(media, p.name), p.colour)
		ffmpegRun(t, "-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=48000", p.freq), "-t", "4",
			"-ac", "2", "-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-page_duration", "20000", "-f", "ogg",
			filepath.Join(media, p.name+".ogg"))
	}
	// pictures: where each camera's 16:9 picture is fitted in its gallery tile, in join
	// order; outside: a point inside no picture (the background, or black).
	for _, tc := range []composedCase{
		{name: "2participants", n: 2, w: 1280, h: 720, pictures: []rect{{8, 184, 628, 352}, {644, 184, 628, 352}},
			outside: [2]int{640, 20}, background: true, leave: true},
		{name: "4participants", n: 4, w: 1280, h: 720,
			pictures: []rect{{12, 8, 618, 348}, {648, 8, 618, 348}, {12, 364, 618, 348}, {648, 364, 618, 348}},
			outside:  [2]int{4, 360}, leave: true},
		// Portrait: the two tiles stacked, each fitted 704 wide (the decoders' box is 360x640:
		// the tile still needs h).
		{name: "2participants720x1280", n: 2, w: 720, h: 1280, pictures: []rect{{8, 124, 704, 394}, {8, 760, 704, 394}},
			outside: [2]int{360, 60}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testBroadcastComposed(t, media, all[:tc.n], tc)
		})
	}
}

// composedCase is one broadcast of TestDevBroadcastComposed.
type composedCase struct {
	name       string
	n          int
	w, h       int // the broadcast's resolution
	pictures   []rect
	outside    [2]int
	background bool
	leave      bool // the last participant leaves, the broadcast stops, one asset is checked
}

// rect is a region of the broadcast picture.
type rect struct{ x, y, w, h int }

func (r rect) centre() (int, int) { return r.x + r.w/2, r.y + r.h/2 }

// badge is the centre of the layer badge in a camera picture drawn at r.
func (r rect) badge() (int, int) { return r.x + r.w*3/16, r.y + r.h/4 }

// magenta is the background image's colour (no participant's).
var magenta = [3]int{0xD0, 0x20, 0xD0}

// testBroadcastComposed runs one case with the participants' media in dir (makeCameraLayers
// as dir/NAME, dir/NAME.ogg).
func testBroadcastComposed(t *testing.T, media string, parts []composedParticipant, tc composedCase) {
	dir := t.TempDir()
	resolution := fmt.Sprintf("%dx%d", tc.w, tc.h)

	httpAddr, kafkaAddr := freeAddr(t), freeAddr(t)
	dataDir := t.TempDir()
	p := startDev(t, dataDir, httpAddr, kafkaAddr)
	defer p.stop(t)
	base := "http://" + httpAddr

	bgField := ""
	if tc.background {
		ffmpegRun(t, "-f", "lavfi", "-i", "color=c=0xD020D0:s=320x180", "-frames:v", "1", filepath.Join(dir, "bg.png"))
		img := httptest.NewServer(http.FileServer(http.Dir(dir)))
		defer img.Close()
		bgField = `,"background":"` + img.URL + `/bg.png"`
	}
	fx := newBroadcastFixture(t, base)
	lsID, pid, lsStatus, space, bc := fx.lsID, fx.playbackID, fx.lsStatus, fx.space, fx.broadcasts
	var bid string
	testenv.Eventually(t, 10*time.Second, func() bool {
		st, res := api(t, "POST", bc, `{"live_stream_id":"`+lsID+`","resolution":"640x360"}`)
		return st == 400 && res != nil
	}, "a bad resolution was not refused with 400")
	testenv.Eventually(t, 10*time.Second, func() bool {
		st, res := api(t, "POST", bc, `{"live_stream_id":"`+lsID+`","resolution":"`+resolution+`","layout":"gallery"`+bgField+`}`)
		if st == 201 {
			bid = res["data"].(map[string]any)["id"].(string)
		}
		return st == 201
	}, "spaces-api never accepted the live stream")

	_, res := api(t, "POST", base+"/system/v1/signing-keys", "")
	sk := res["data"].(map[string]any)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var clients []*spacesclient.Client
	var videoFiles []*atomic.Pointer[string]
	for i, pt := range parts {
		tok, err := spacejwt.Sign([]byte(sk["private_key"].(string)), sk["id"].(string),
			spacejwt.SignClaims{Audience: spacejwt.AudienceRT, Subject: space, ParticipantID: pt.name})
		if err != nil {
			t.Fatal(err)
		}
		c, err := spacesclient.Join(ctx, "ws://"+httpAddr+"/spaces", tok, spacesclient.Options{LoopbackOnly: true})
		if err != nil {
			t.Fatalf("join %s: %v", pt.name, err)
		}
		defer c.Close()
		clients = append(clients, c)
		at, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, fmt.Sprint("a", i), spacesclient.NewTrackID())
		if err != nil {
			t.Fatal(err)
		}
		cur := &atomic.Pointer[string]{}
		v := filepath.Join(media, pt.name)
		cur.Store(&v)
		videoFiles = append(videoFiles, cur)
		publishSimulcastCamera(ctx, t, c, cur)
		go sendOgg(ctx, filepath.Join(media, pt.name+".ogg"), at) //nolint:errcheck
		if _, err := c.Publish(ctx, at, "microphone"); err != nil {
			t.Fatalf("publish %s microphone: %v", pt.name, err)
		}
	}
	testenv.Eventually(t, 15*time.Second, func() bool {
		_, res := api(t, "GET", base+"/video/v1/spaces/"+space, "")
		return res["data"].(map[string]any)["status"] == "active"
	}, "space never became active")
	// Every camera's media must have reached the SFU before the start: the compositor lays out
	// the tracks it has in join order, and a camera whose media came later takes the next free
	// tile. A remote track shows up at a client with its first packet, so each client waiting
	// for the other cameras proves every camera is flowing.
	for i, c := range clients {
		seen := map[string]bool{}
		deadline := time.After(20 * time.Second)
		for len(seen) < len(clients)-1 {
			select {
			case rt := <-c.Tracks():
				if rt.Track.Kind() == webrtc.RTPCodecTypeVideo {
					seen[rt.TID] = true
				}
			case <-deadline:
				t.Fatalf("%s received %d of the other %d cameras", parts[i].name, len(seen), len(clients)-1)
			}
		}
	}
	if st, res := api(t, "POST", bc+"/"+bid+"/start", ""); st != 200 {
		t.Fatalf("start = %d %v", st, res)
	}
	testenv.Eventually(t, 40*time.Second, func() bool { return lsStatus() == "active" },
		"the live stream never became active from the compositor:\n%s", p.out)

	hls := base + "/stream/" + pid + ".m3u8"
	testenv.Eventually(t, 30*time.Second, func() bool {
		r, err := http.Get(hls)
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	}, "no HLS playlist")
	time.Sleep(6 * time.Second) // a few segments of the composed picture

	probeH264AAC(t, hls, tc.w, tc.h)

	frame := grabFrame(t, hls, tc.w, tc.h)
	for i, pt := range parts {
		if got := frame(tc.pictures[i].centre()); !nearRGB(got, pt.rgb) {
			t.Errorf("tile %d (%s) centre = %v, want ≈ %v", i, pt.name, got, pt.rgb)
		}
		// The tile is drawn from layer h: about its size (q would be scaled up twice).
		got := frame(tc.pictures[i].badge())
		if want := cameraLayers[1]; !nearRGB(got, want.rgb) {
			seen := "no layer's badge"
			for _, l := range cameraLayers {
				if nearRGB(got, l.rgb) {
					seen = "layer " + l.rid + "'s badge"
				}
			}
			t.Errorf("tile %d (%s) shows %s (%v), want layer %s's (%v):\n%s", i, pt.name, seen, got, want.rid, want.rgb, layerLines(p.out.String()))
		}
	}
	// Around the pictures: the background, or black.
	got := frame(tc.outside[0], tc.outside[1])
	if tc.background != nearRGB(got, magenta) {
		t.Errorf("outside the pictures = %v; background %v (magenta ≈ %v)", got, tc.background, magenta)
	}
	for _, pt := range parts {
		if nearRGB(got, pt.rgb) {
			t.Errorf("outside the pictures = %v: %s's colour", got, pt.name)
		}
	}

	// Audio: every tone is in the mix.
	checkTones(t, hls, parts)

	if os.Getenv("SPACECAST_BENCH_BROADCAST") != "" {
		cx, cy := tc.pictures[0].centre()
		benchGlassToGlass(t, hls, dir, parts[0], [2]int{cx, cy}, videoFiles[0], tc.w, tc.h)
	}
	if !tc.leave {
		return
	}

	// The last participant leaves: its tile goes, the others stay, and the RTMP session
	// goes on (the live stream never leaves active, one asset in the end).
	gone := parts[len(parts)-1]
	if err := clients[len(clients)-1].Leave(); err != nil {
		t.Fatal(err)
	}
	waitPicture(t, hls, tc.w, tc.h, parts[:len(parts)-1], []composedParticipant{gone}, lsStatus, 30*time.Second)

	if st, res := api(t, "POST", bc+"/"+bid+"/stop", ""); st != 200 {
		t.Fatalf("stop = %d %v", st, res)
	}
	checkOneVOD(t, base, lsID, dataDir, lsStatus)
}

// layerLines are the SFU's layer choices for the broadcast in the dev output.
func layerLines(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "broadcast: camera layer") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// probeH264AAC: ffprobe finds H.264 at w×h and AAC in the HLS at url.
func probeH264AAC(t *testing.T, url string, w, h int) {
	t.Helper()
	probe, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height",
		"-of", "csv=p=0", url).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, probe)
	}
	if !strings.Contains(string(probe), fmt.Sprintf("h264,video,%d,%d", w, h)) && !strings.Contains(string(probe), fmt.Sprintf("h264,%d,%d,video", w, h)) {
		t.Fatalf("ffprobe shows no H.264 %dx%d:\n%s", w, h, probe)
	}
	if !strings.Contains(string(probe), "aac") {
		t.Fatalf("ffprobe shows no AAC:\n%s", probe)
	}
}

// grabAudio decodes 2 s of the HLS's audio from its live edge, mono at 48 kHz.
func grabAudio(t *testing.T, hls string) []float64 {
	t.Helper()
	pcm, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-live_start_index", "-1", "-i", hls,
		"-vn", "-t", "2", "-ac", "1", "-ar", "48000", "-f", "s16le", "pipe:1").Output()
	if err != nil || len(pcm) < 48000 {
		t.Fatalf("audio grab: %v (%d bytes)", err, len(pcm))
	}
	samples := make([]float64, len(pcm)/2)
	for i := range samples {
		samples[i] = float64(int16(uint16(pcm[2*i]) | uint16(pcm[2*i+1])<<8))
	}
	return samples
}

// tonePower is goertzel's relative power of freq averaged over 100 ms windows of mono
// 48 kHz samples. One window over the whole grab would lose a tone heard throughout when the
// mix has a gap (a 20 ms chunk missed under load is 8.8 periods of 440 Hz: the tone's phase
// jumps and the parts cancel), while a tone absent is absent from every window.
func tonePower(samples []float64, freq float64) float64 {
	const window = 4800
	var sum float64
	n := 0
	for w := 0; w+window <= len(samples); w += window {
		sum += goertzel(samples[w:w+window], 48000, freq)
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// checkTones: each participant's tone is in the HLS's mix, and 3300 Hz (no one's) is not.
func checkTones(t *testing.T, hls string, parts []composedParticipant) {
	t.Helper()
	samples := grabAudio(t, hls)
	for _, pt := range parts {
		if g := tonePower(samples, float64(pt.freq)); g < 0.4/float64(len(parts)) {
			t.Errorf("%s's %d Hz tone is not in the mix (relative power %.3f per 100 ms)", pt.name, pt.freq, g)
		}
	}
	if g := tonePower(samples, 3300); g > 0.05 {
		t.Errorf("3300 Hz (no participant) has relative power %.3f per 100 ms", g)
	}
}

// waitPicture waits until the HLS's live edge shows every colour of present and none of
// absent (a 40-pixel lattice over the w×h picture), failing if the live stream leaves
// active meanwhile (the RTMP session restarted) or timeout passes.
func waitPicture(t *testing.T, hls string, w, h int, present, absent []composedParticipant, lsStatus func() string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if s := lsStatus(); s != "active" {
			t.Fatalf("live stream %s while the picture changed", s)
		}
		frame := grabFrame(t, hls, w, h)
		found := map[string]bool{}
		for y := 20; y < h; y += 40 {
			for x := 20; x < w; x += 40 {
				for _, pt := range append(present[:len(present):len(present)], absent...) {
					if nearRGB(frame(x, y), pt.rgb) {
						found[pt.name] = true
					}
				}
			}
		}
		ok := true
		for _, pt := range absent {
			ok = ok && !found[pt.name]
		}
		for _, pt := range present {
			ok = ok && found[pt.name]
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the picture shows %v, want %d present and %d absent", found, len(present), len(absent))
		}
		time.Sleep(time.Second)
	}
}

// checkOneVOD: once the broadcast ended the live stream completes (idle) with exactly one
// asset (the RTMP session never restarted), whose VOD ends and is H.264 + AAC of at least 5 s.
func checkOneVOD(t *testing.T, base, lsID, dataDir string, lsStatus func() string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() bool { return lsStatus() == "idle" }, "the live stream did not complete")
	_, res := api(t, "GET", base+"/video/v1/live-streams/"+lsID, "")
	assets, _ := res["data"].(map[string]any)["recent_asset_ids"].([]any)
	if len(assets) != 1 {
		t.Fatalf("recent_asset_ids = %v, want one asset (the RTMP session restarted?)", assets)
	}
	vod := filepath.Join(dataDir, "recordings", assets[0].(string), "vod.m3u8")
	testenv.Eventually(t, 20*time.Second, func() bool { _, ended := vodDuration(t, vod); return ended }, "the asset's VOD never ended")
	vprobe, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name",
		"-of", "csv=p=0", vod).CombinedOutput()
	if err != nil || !strings.Contains(string(vprobe), "h264") || !strings.Contains(string(vprobe), "aac") {
		t.Fatalf("ffprobe of the VOD: %v\n%s", err, vprobe)
	}
	if d, _ := vodDuration(t, vod); d < 5 {
		t.Fatalf("VOD is %.1f s, want the whole broadcast", d)
	}
}

// grabFrame decodes one frame (w×h) at the live edge of the HLS as RGB and returns a pixel
// getter.
func grabFrame(t *testing.T, hls string, w, h int) func(x, y int) [3]int {
	t.Helper()
	raw, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-live_start_index", "-1", "-i", hls,
		"-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1").Output()
	if err != nil || len(raw) != w*h*3 {
		t.Fatalf("frame grab: %v (%d bytes, want %dx%d)", err, len(raw), w, h)
	}
	return func(x, y int) [3]int {
		o := (y*w + x) * 3
		return [3]int{int(raw[o]), int(raw[o+1]), int(raw[o+2])}
	}
}

func nearRGB(a, b [3]int) bool {
	for i := range a {
		if d := a[i] - b[i]; d > 40 || d < -40 {
			return false
		}
	}
	return true
}

// benchGlassToGlass (SPACECAST_BENCH_BROADCAST=1) switches the first participant's camera
// from its colour to white and times until the HLS live edge shows white in its tile: the
// delay from a participant's camera to the live stream's HLS (sender → SFU → compositor →
// encoder → RTMP → segmenter → playlist → player), five times. It logs the CPU this process
// and its children (the compositor's ffmpegs, reaped at stop) used so far.
func benchGlassToGlass(t *testing.T, hls, dir string, pt composedParticipant, centre [2]int, cur *atomic.Pointer[string], w, h int) {
	white := filepath.Join(dir, pt.name+"-white")
	makeCameraLayers(t, white, "white")
	orig := *cur.Load()
	for i := 0; i < 5; i++ {
		for _, target := range []struct {
			path string
			rgb  [3]int
		}{{white, [3]int{255, 255, 255}}, {orig, pt.rgb}} {
			t0 := time.Now()
			p := target.path
			cur.Store(&p)
			for {
				if nearRGB(grabFrame(t, hls, w, h)(centre[0], centre[1]), target.rgb) {
					break
				}
				if time.Since(t0) > 30*time.Second {
					t.Fatalf("the switch to %s never reached the HLS", filepath.Base(p))
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("glass-to-glass (camera → HLS live edge, polled every 100 ms + frame grab): %v", time.Since(t0).Round(10*time.Millisecond))
		}
	}
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	cpu := func(r syscall.Rusage) time.Duration {
		return time.Duration(r.Utime.Nano() + r.Stime.Nano())
	}
	t.Logf("CPU so far: this process %v (dev mode: all services, participants, compositor's Go side), reaped children %v", cpu(self), cpu(kids))
}
