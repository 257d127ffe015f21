package livestream_test

import (
	"bytes"
	"image"
	"image/draw"
	"image/gif"
	"image/jpeg"
	_ "image/png"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/testenv"
)

// imageClockFilter burns the source's clock into the picture: 8 stripes 40 px wide, stripe i light
// when bit i of the time in tenths of a second is set (0–25.5 s).
const imageClockFilter = "color=c=black:s=320x240:r=25,format=gray," +
	"geq=lum='if(bitand(floor(T*10+0.5)\\,pow(2\\,floor(X/40)))\\,235\\,16)',format=yuv420p"

// publishImageClock publishes the clock over RTMP for dur.
func publishImageClock(t *testing.T, url string, dur time.Duration) *encoder {
	t.Helper()
	return publishFFmpegInput(t, url, []string{"-f", "lavfi", "-i", imageClockFilter,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", strconv.Itoa(int(dur.Seconds()))},
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k")
}

// readClock decodes the burned clock of a frame (tenths of a second).
func readClock(t *testing.T, img image.Image) int {
	t.Helper()
	b := img.Bounds()
	if b.Dx() != 320 || b.Dy() != 240 {
		t.Fatalf("frame is %dx%d, want the source's 320x240", b.Dx(), b.Dy())
	}
	return readStripes(img)
}

// readStripes decodes the clock of a frame of any size (8 stripes across its width).
func readStripes(img image.Image) int {
	b := img.Bounds()
	w := b.Dx() / 8
	v := 0
	for i := range 8 {
		r, g, bl, _ := img.At(b.Min.X+i*w+w/2, b.Min.Y+b.Dy()/2).RGBA()
		if (r+g+bl)/3 > 0x8000 {
			v |= 1 << i
		}
	}
	return v
}

func decodeImage(t *testing.T, body []byte) image.Image {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("decoding the image (%d bytes): %v", len(body), err)
	}
	return img
}

func TestImages(t *testing.T) {
	needFFmpeg(t)
	e := setup(t, testenv.SQLBackends(t)[0])
	ls := e.create(`{"playback_policies":["public","signed"],"reconnect_window":0,"new_asset_settings":{"playback_policies":["public"]}}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	pub, signed := pids(ls)["public"], pids(ls)["signed"]

	if st, body, _ := e.get("/image/" + pub + "/thumbnail.jpg"); st != http.StatusPreconditionFailed {
		t.Fatalf("thumbnail of an idle stream = %d %s, want 412", st, body)
	}
	enc := publishImageClock(t, e.rtmpURL(key), 9*time.Second)
	testenv.Eventually(t, 15*time.Second, func() bool { return e.stream(id)["status"] == "active" }, "stream never became active")
	assetID := e.stream(id)["active_asset_id"].(string)

	// Live: the latest keyframe, which moves on as the stream goes.
	var first int
	testenv.Eventually(t, 10*time.Second, func() bool {
		st, body, _ := e.get("/image/" + pub + "/thumbnail.jpg")
		if st != 200 {
			return false
		}
		first = readClock(t, decodeImage(t, body))
		return true
	}, "no live thumbnail")
	testenv.Eventually(t, 10*time.Second, func() bool {
		st, body, hdr := e.get("/image/" + pub + "/thumbnail.jpg")
		if st != 200 || hdr.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("live thumbnail = %d %v", st, hdr)
		}
		return readClock(t, decodeImage(t, body)) > first
	}, "the live thumbnail does not follow the stream")

	// Signed playback ids need a token with the image audiences.
	if st, _, _ := e.get("/image/" + signed + "/thumbnail.jpg"); st != http.StatusForbidden {
		t.Fatalf("signed thumbnail without token = %d", st)
	}
	vTok, _ := spacejwt.Sign(e.keyPEM, playbackKID, spacejwt.SignClaims{Audience: spacejwt.AudiencePlayback, Subject: signed})
	if st, _, _ := e.get("/image/" + signed + "/thumbnail.jpg?token=" + vTok); st != http.StatusForbidden {
		t.Fatalf("signed thumbnail with a video token = %d, want 403", st)
	}
	tTok, _ := spacejwt.Sign(e.keyPEM, playbackKID, spacejwt.SignClaims{Audience: spacejwt.AudienceThumbnail, Subject: signed})
	if st, body, _ := e.get("/image/" + signed + "/thumbnail.png?token=" + tTok); st != 200 {
		t.Fatalf("signed thumbnail with a thumbnail token = %d %s", st, body)
	}
	if st, _, _ := e.get("/image/" + signed + "/animated.gif?token=" + tTok); st != http.StatusForbidden {
		t.Fatalf("signed animation with a thumbnail token = %d, want 403", st)
	}
	gTok, _ := spacejwt.Sign(e.keyPEM, playbackKID, spacejwt.SignClaims{Audience: spacejwt.AudienceAnimated, Subject: signed})
	if st, body, _ := e.get("/image/" + signed + "/animated.gif?token=" + gTok + "&end=1"); st != 200 {
		t.Fatalf("signed animation with a gif token = %d %s", st, body)
	}

	if err := enc.wait(t, 20*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v %s", err, enc.stderr)
	}
	testenv.Eventually(t, 15*time.Second, func() bool { return e.asset(assetID)["status"] == "ready" }, "asset never ready")
	apid := e.asset(assetID)["playback_ids"].([]any)[0].(map[string]any)["id"].(string)

	// The asset: time=5 shows the clock at 5 s.
	st, body, hdr := e.get("/image/" + apid + "/thumbnail.jpg?time=5")
	if st != 200 || hdr.Get("Content-Type") != "image/jpeg" || hdr.Get("X-Spacecast-Image-Cache") != "miss" {
		t.Fatalf("asset thumbnail = %d %v %s", st, hdr, body)
	}
	if got := readClock(t, decodeImage(t, body)); got < 48 || got > 52 {
		t.Fatalf("thumbnail at time=5 shows %.1f s", float64(got)/10)
	}
	if got := readClock(t, decodeImage(t, mustGet(t, e, "/image/"+apid+"/thumbnail.png?time=2.5"))); got < 23 || got > 27 {
		t.Fatalf("thumbnail at time=2.5 shows %.1f s", float64(got)/10)
	}
	// Cached: the same bytes, no new file.
	cache := filepath.Join(e.dir, assetID, "images")
	before, _ := os.ReadDir(cache)
	st, again, hdr := e.get("/image/" + apid + "/thumbnail.jpg?time=5")
	after, _ := os.ReadDir(cache)
	if st != 200 || !bytes.Equal(again, body) || hdr.Get("X-Spacecast-Image-Cache") != "hit" || len(after) != len(before) {
		t.Fatalf("second request: %d %v, same bytes %v, cache files %d → %d", st, hdr, bytes.Equal(again, body), len(before), len(after))
	}

	// Sizes and fit modes.
	for _, tt := range []struct {
		q    string
		w, h int
	}{
		{"width=160", 160, 120}, {"height=60", 80, 60}, {"width=100&height=100", 100, 75},
		{"width=100&height=100&fit_mode=pad", 100, 100}, {"width=100&height=100&fit_mode=crop", 100, 100},
		{"width=100&height=40&fit_mode=stretch", 100, 40}, {"width=160&rotate=90", 120, 160},
	} {
		b := decodeImage(t, mustGet(t, e, "/image/"+apid+"/thumbnail.jpg?time=1&"+tt.q)).Bounds()
		if b.Dx() != tt.w || b.Dy() != tt.h {
			t.Fatalf("%s: %dx%d, want %dx%d", tt.q, b.Dx(), b.Dy(), tt.w, tt.h)
		}
	}
	if webp := mustGet(t, e, "/image/"+apid+"/thumbnail.webp?time=1"); len(webp) < 12 || string(webp[:4]) != "RIFF" || string(webp[8:12]) != "WEBP" {
		t.Fatalf("thumbnail.webp is not WebP: % x", webp[:min(12, len(webp))])
	}

	// Animated: start..end at fps is that many frames, from the asked time on.
	g, err := gif.DecodeAll(bytes.NewReader(mustGet(t, e, "/image/"+apid+"/animated.gif?start=2&end=4&fps=10&width=160")))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(g.Image); n < 19 || n > 21 || g.Config.Width != 160 {
		t.Fatalf("animated.gif start=2 end=4 fps=10: %d frames %dx%d, want 20 at 160 wide", n, g.Config.Width, g.Config.Height)
	}
	// Frames after the first may only hold the pixels that changed: paint them in turn.
	canvas := image.NewRGBA(image.Rect(0, 0, g.Config.Width, g.Config.Height))
	draw.Draw(canvas, g.Image[0].Bounds(), g.Image[0], g.Image[0].Bounds().Min, draw.Src)
	f0 := readStripes(canvas)
	for _, fr := range g.Image[1:] {
		draw.Draw(canvas, fr.Bounds(), fr, fr.Bounds().Min, draw.Over)
	}
	if fl := readStripes(canvas); f0 < 19 || f0 > 21 || fl < 37 || fl > 40 {
		t.Fatalf("animated.gif start=2 end=4: first frame shows %.1f s, last %.1f s", float64(f0)/10, float64(fl)/10)
	}
	if webp := mustGet(t, e, "/image/"+apid+"/animated.webp?end=2"); !bytes.Contains(webp[:min(64, len(webp))], []byte("ANIM")) {
		t.Fatalf("animated.webp has no ANIM chunk")
	}

	// Bad input: 400, and nothing cached.
	files, _ := os.ReadDir(cache)
	for _, q := range []string{"thumbnail.jpg?time=99", "thumbnail.jpg?time=-1", "thumbnail.jpg?width=0", "thumbnail.jpg?fit_mode=pad",
		"thumbnail.jpg?width=9&height=9&fit_mode=smartcrop", "thumbnail.bmp", "animated.gif?start=3&end=2", "animated.gif?end=30",
		"animated.gif?fps=100", "thumbnail.jpg?colour=red"} {
		if st, body, _ := e.get("/image/" + apid + "/" + q); st != http.StatusBadRequest {
			t.Fatalf("%s = %d %s, want 400", q, st, body)
		}
	}
	if now, _ := os.ReadDir(cache); len(now) != len(files) {
		t.Fatalf("bad requests changed the cache: %d → %d files", len(files), len(now))
	}
	if st, _, _ := e.get("/image/nosuchid/thumbnail.jpg"); st != http.StatusNotFound {
		t.Fatalf("unknown playback id = %d", st)
	}
}

func mustGet(t *testing.T, e *env, path string) []byte {
	t.Helper()
	st, body, _ := e.get(path)
	if st != 200 {
		t.Fatalf("GET %s = %d %s", path, st, body)
	}
	return body
}

var _ = jpeg.Decode // image/jpeg registers the JPEG decoder
