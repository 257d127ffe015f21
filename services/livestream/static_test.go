package livestream_test

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/testenv"
)

// files is an asset's static_renditions.files by name.
func files(as map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	sr, _ := as["static_renditions"].(map[string]any)
	fs, _ := sr["files"].([]any)
	for _, f := range fs {
		m := f.(map[string]any)
		out[m["name"].(string)] = m
	}
	return out
}

func rangeGet(t *testing.T, url, rng string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Range", rng)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestStaticRenditions: ffmpeg publishes to a live stream whose recordings get highest.mp4 and
// audio.m4a; once the asset is ready they are made, served with range requests (signed ids need
// a token), and added, refused, deleted and removed through the asset routes.
func TestStaticRenditions(t *testing.T) {
	needFFmpeg(t)
	for _, b := range testenv.SQLBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := setup(t, b)
			ls := e.create(`{"playback_policy":"public","reconnect_window":0,"new_asset_settings":{"playback_policies":["public","signed"],
				"static_renditions":[{"resolution":"highest"},{"resolution":"audio-only","passthrough":"a"}]}}`)
			id, key := ls["id"].(string), ls["stream_key"].(string)
			nas := ls["new_asset_settings"].(map[string]any)
			if rs, _ := nas["static_renditions"].([]any); len(rs) != 2 {
				t.Fatalf("new_asset_settings %v", nas)
			}
			enc := publishFFmpeg(t, e.rtmpURL(key), 5*time.Second)
			testenv.Eventually(t, 20*time.Second, func() bool { return e.stream(id)["active_asset_id"] != nil }, "never recording")
			assetID := e.stream(id)["active_asset_id"].(string)
			if fs := files(e.asset(assetID)); len(fs) != 2 || fs["highest.mp4"]["status"] != "preparing" {
				t.Fatalf("renditions while recording: %v", fs)
			}
			_ = enc.wait(t, 30*time.Second)
			testenv.Eventually(t, 20*time.Second, func() bool { return e.stream(id)["status"] == "idle" }, "never idle")
			var as map[string]any
			testenv.Eventually(t, 60*time.Second, func() bool {
				as = e.asset(assetID)
				fs := files(as)
				return fs["highest.mp4"]["status"] == "ready" && fs["audio.m4a"]["status"] == "ready"
			}, "renditions never ready")
			fs := files(as)
			hi, au := fs["highest.mp4"], fs["audio.m4a"]
			if hi["ext"] != "mp4" || hi["resolution"] != "highest" || hi["type"] != "standard" || hi["width"] != 320.0 ||
				hi["height"] != 240.0 || hi["id"] == nil || au["ext"] != "m4a" || au["passthrough"] != "a" || au["width"] != nil ||
				au["resolution_tier"] != "audio-only" || as["mp4_support"] != "none" {
				t.Fatalf("asset's static renditions %v (mp4_support %v)", fs, as["mp4_support"])
			}
			apids := pids(as)
			pub, signed := apids["public"], apids["signed"]

			st, full, hdr := e.get("/stream/" + pub + "/highest.mp4")
			if st != 200 || hdr.Get("Content-Type") != "video/mp4" || strconv.Itoa(len(full)) != hi["filesize"] {
				t.Fatalf("highest.mp4 = %d %v, %d bytes, filesize %v", st, hdr, len(full), hi["filesize"])
			}
			path := filepath.Join(t.TempDir(), "highest.mp4")
			if err := os.WriteFile(path, full, 0o644); err != nil {
				t.Fatal(err)
			}
			p := ffprobe(t, path)
			dur, _ := strconv.ParseFloat(p.Format.Duration, 64)
			assetDur, _ := as["duration"].(float64)
			if got := p.codecs(); !slices.Equal(got, []string{"audio/aac", "video/h264"}) || math.Abs(dur-assetDur) > 1.1 {
				t.Fatalf("highest.mp4: %v, %.2fs; asset %.2fs", got, dur, assetDur)
			}
			t.Logf("highest.mp4: %d bytes, %.2fs (asset %.2fs)", len(full), dur, assetDur)
			if got := ffprobe(t, e.url+"/stream/"+pub+"/audio.m4a").codecs(); !slices.Equal(got, []string{"audio/aac"}) {
				t.Fatalf("audio.m4a: %v", got)
			}
			if st, part := rangeGet(t, e.url+"/stream/"+pub+"/highest.mp4", "bytes=100-1099"); st != http.StatusPartialContent || !bytes.Equal(part, full[100:1100]) {
				t.Fatalf("range = %d, %d bytes (equal %v)", st, len(part), bytes.Equal(part, full[100:1100]))
			}
			if st, _, _ := e.get("/stream/" + signed + "/highest.mp4"); st != http.StatusForbidden {
				t.Fatalf("signed id without token = %d", st)
			}
			tok, _ := spacejwt.Sign(e.keyPEM, playbackKID, spacejwt.SignClaims{Audience: spacejwt.AudiencePlayback, Subject: signed})
			if st, body, _ := e.get("/stream/" + signed + "/highest.mp4?token=" + tok); st != 200 || !bytes.Equal(body, full) {
				t.Fatalf("signed id with token = %d", st)
			}
			for _, name := range []string{"capped-1080p.mp4", "720p.mp4", "low.mp4"} {
				if st, _, _ := e.get("/stream/" + pub + "/" + name); st != http.StatusNotFound {
					t.Fatalf("%s (not asked for) = %d, want 404", name, st)
				}
			}
			lspub := pids(ls)["public"]
			if st, _, _ := e.get("/stream/" + lspub + "/highest.mp4"); st == 200 {
				t.Fatalf("a live stream's playback id served an MP4")
			}

			// Bad input changes nothing.
			base := "/video/v1/assets/" + assetID + "/static-renditions"
			for _, c := range []struct {
				method, path, body string
				want               int
			}{
				{"POST", base, `{"resolution":"highest"}`, 400},
				{"POST", base, `{"resolution":"4k"}`, 400},
				{"POST", base, `{"resolution":"capped-1080p"}`, 400},
				{"POST", base, `{}`, 400},
				{"POST", "/video/v1/assets/nosuch/static-renditions", `{"resolution":"720p"}`, 404},
				{"DELETE", base + "/nosuch", ``, 404},
				{"DELETE", "/video/v1/assets/nosuch/static-renditions/" + hi["id"].(string), ``, 404},
				{"PUT", "/video/v1/assets/" + assetID + "/mp4-support", `{"mp4_support":"capped-1080p"}`, 400},
				{"PUT", "/video/v1/assets/" + assetID + "/mp4-support", `{"mp4_support":"high"}`, 400},
			} {
				if st, res := e.call(writerA, c.method, c.path, c.body); st != c.want {
					t.Errorf("%s %s %s = %d %v, want %d", c.method, c.path, c.body, st, res, c.want)
				}
			}
			if st, _ := e.call(readerA, "POST", base, `{"resolution":"720p"}`); st != 403 {
				t.Errorf("reader creating a rendition = %d", st)
			}
			if got := files(e.asset(assetID)); len(got) != 2 {
				t.Fatalf("after refused requests: %v", got)
			}

			// A rendition taller than the source is skipped; deleting one removes its file.
			st, res := e.call(writerA, "POST", base, `{"resolution":"1080p"}`)
			if st != 201 || data(res)["status"] != "preparing" || data(res)["name"] != "1080p.mp4" {
				t.Fatalf("create 1080p = %d %v", st, res)
			}
			skipID := data(res)["id"].(string)
			testenv.Eventually(t, 30*time.Second, func() bool { return files(e.asset(assetID))["1080p.mp4"]["status"] == "skipped" },
				"1080p of a 240p source never skipped")
			if st, _ := e.call(writerA, "DELETE", base+"/"+au["id"].(string), ""); st != 204 {
				t.Fatalf("delete audio rendition = %d", st)
			}
			if st, _, _ := e.get("/stream/" + pub + "/audio.m4a"); st != 404 {
				t.Fatalf("deleted audio.m4a = %d", st)
			}
			if _, err := os.Stat(filepath.Join(e.dir, assetID, "static", au["id"].(string))); !os.IsNotExist(err) {
				t.Fatalf("deleted rendition's file: %v", err)
			}

			// mp4_support (legacy) once the API's renditions are gone.
			for _, rid := range []string{hi["id"].(string), skipID} {
				if st, _ := e.call(writerA, "DELETE", base+"/"+rid, ""); st != 204 {
					t.Fatalf("delete %s = %d", rid, st)
				}
			}
			if st, res := e.call(writerA, "PUT", "/video/v1/assets/"+assetID+"/mp4-support", `{"mp4_support":"audio-only"}`); st != 200 ||
				data(res)["mp4_support"] != "audio-only" {
				t.Fatalf("mp4-support = %d %v", st, res)
			}
			testenv.Eventually(t, 30*time.Second, func() bool {
				sr, _ := e.asset(assetID)["static_renditions"].(map[string]any)
				return sr["status"] == "ready"
			}, "mp4_support rendition never ready")
			legacy := files(e.asset(assetID))["audio.m4a"]
			if legacy == nil || legacy["id"] != nil || legacy["status"] != nil {
				t.Fatalf("mp4_support file %v (want no id or status, as Mux)", legacy)
			}
			if st, _, _ := e.get("/stream/" + pub + "/audio.m4a"); st != 200 {
				t.Fatalf("mp4_support audio.m4a = %d", st)
			}

			if st, _ := e.call(writerA, "DELETE", "/video/v1/assets/"+assetID, ""); st != 204 {
				t.Fatalf("delete asset = %d", st)
			}
			if _, err := os.Stat(filepath.Join(e.dir, assetID)); !os.IsNotExist(err) {
				t.Fatalf("deleted asset's files: %v", err)
			}
			got, datas := readEvents(t, e.brokers, id, 23)
			count := map[string]int{}
			for i, typ := range got {
				count[typ]++
				if typ == "asset.static_rendition.ready" && datas[i]["asset_id"] != assetID {
					t.Errorf("%s data %v", typ, datas[i])
				}
			}
			if count["asset.static_rendition.created"] != 4 || count["asset.static_rendition.ready"] != 3 ||
				count["asset.static_rendition.skipped"] != 1 || count["asset.static_rendition.deleted"] != 4 || got[len(got)-1] != "asset.deleted" {
				t.Fatalf("events %v", got)
			}
		})
	}
}

// TestStaticRenditionAfterKill9: the instance making an MP4 is killed (kill -9) with a
// half-written file on disk; it is never served, and another instance makes it once the lease
// expires.
func TestStaticRenditionAfterKill9(t *testing.T) {
	needFFmpeg(t)
	c := newCluster(t, testenv.SQLBackends(t)[0])
	// An "ffmpeg" that writes part of its output and hangs while its parent lives.
	hang := filepath.Join(t.TempDir(), "ffmpeg-hang")
	script := "#!/bin/sh\nfor a; do last=$a; done\nhead -c 4096 /dev/urandom > \"$last\"\nwhile kill -0 $PPID 2>/dev/null; do sleep 0.2; done\n"
	if err := os.WriteFile(hang, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	p1 := c.start("p1", "SPACECAST_LIVESTREAM_FFMPEG="+hang, "SPACECAST_LIVESTREAM_MP4_LEASE=2s")
	ls := p1.create(`{"playback_policy":"public","reconnect_window":0,"new_asset_settings":{"playback_policies":["public"],
		"static_renditions":[{"resolution":"highest"}]}}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	enc := publishFFmpeg(t, p1.rtmpURL(key), 4*time.Second)
	_ = enc.wait(t, 30*time.Second)
	waitFor(t, 20*time.Second, func() bool { return p1.stream(id)["status"] == "idle" }, "never idle")
	assetID := p1.stream(id)["recent_asset_ids"].([]any)[0].(string)
	var tmp []string
	waitFor(t, 20*time.Second, func() bool {
		tmp, _ = filepath.Glob(filepath.Join(c.dir, assetID, "static", "*", ".tmp-highest.mp4"))
		return len(tmp) == 1
	}, "the hanging ffmpeg never started")
	pub := pids(p1.asset(assetID))["public"]
	if st, _, _ := p1.get("/stream/" + pub + "/highest.mp4"); st != http.StatusNotFound {
		t.Fatalf("half-made highest.mp4 = %d, want 404", st)
	}
	if f := files(p1.asset(assetID))["highest.mp4"]; f["status"] != "preparing" {
		t.Fatalf("while made: %v", f)
	}
	p1.kill9()
	killed := time.Now()

	p2 := c.start("p2", "SPACECAST_LIVESTREAM_MP4_LEASE=2s")
	waitFor(t, 30*time.Second, func() bool { return files(p2.asset(assetID))["highest.mp4"]["status"] == "ready" },
		"rendition never made after the crash: %v", files(p2.asset(assetID)))
	t.Logf("kill -9 → ready on another instance in %v (lease 2s)", time.Since(killed).Round(10*time.Millisecond))
	st, body, _ := p2.get("/stream/" + pub + "/highest.mp4")
	if st != 200 {
		t.Fatalf("highest.mp4 after recovery = %d", st)
	}
	path := filepath.Join(t.TempDir(), "h.mp4")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := ffprobe(t, path).codecs(); !slices.Equal(got, []string{"audio/aac", "video/h264"}) {
		t.Fatalf("recovered highest.mp4: %v", got)
	}
	if left, _ := filepath.Glob(filepath.Join(c.dir, assetID, "static", "*", ".tmp-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
