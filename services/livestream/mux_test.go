package livestream_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/testenv"
)

func policiesOf(v any) []string {
	out := []string{}
	for _, p := range v.([]any) {
		out = append(out, p.(map[string]any)["policy"].(string))
	}
	slices.Sort(out)
	return out
}

// Recordings take playback ids, passthrough, meta and test from new_asset_settings, as on Mux;
// the asset is live (is_live, progress "live") while it records; asset events name the asset.
func TestRecordingTakesNewAssetSettings(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		cases := []struct {
			name, body       string
			policies         []string
			passthrough, mtl any
			test             bool
		}{
			{"public stream, signed recording", `{"playback_policy":"public","passthrough":"stream","new_asset_settings":{"playback_policy":["signed"]}}`,
				[]string{"signed"}, nil, nil, false},
			{"signed stream, public recording", `{"playback_policies":["signed"],"new_asset_settings":{"playback_policies":["public"],"passthrough":"rec","meta":{"title":"T","external_id":"x1"}}}`,
				[]string{"public"}, "rec", "T", false},
			{"both", `{"playback_policy":"public","new_asset_settings":{"playback_policy":"public","playback_policies":["signed"],"test":true}}`,
				[]string{"public", "signed"}, nil, nil, true},
			{"no new_asset_settings: no playback ids", `{"playback_policy":"public","passthrough":"stream"}`,
				[]string{}, nil, nil, false},
			{"test stream: test recording", `{"playback_policy":"public","test":true,"new_asset_settings":{}}`,
				[]string{}, nil, nil, true},
		}
		for _, c := range cases {
			ls := e.create(c.body)
			id, key := ls["id"].(string), ls["stream_key"].(string)
			s := publish(t, e, key, time.Second, true)
			live := e.asset(s.Asset.ID)
			if got := policiesOf(live["playback_ids"]); !slices.Equal(got, c.policies) {
				t.Errorf("%s: recording's playback policies %v, want %v", c.name, got, c.policies)
			}
			if live["passthrough"] != c.passthrough || live["test"] != c.test {
				t.Errorf("%s: recording passthrough %v test %v, want %v %v", c.name, live["passthrough"], live["test"], c.passthrough, c.test)
			}
			if m, _ := live["meta"].(map[string]any); (m == nil) != (c.mtl == nil) || (m != nil && m["title"] != c.mtl) {
				t.Errorf("%s: recording meta %v, want title %v", c.name, live["meta"], c.mtl)
			}
			if p, _ := live["progress"].(map[string]any); live["is_live"] != true || live["status"] != "preparing" || p["state"] != "live" {
				t.Errorf("%s: recording asset %v, want is_live, preparing, progress live", c.name, live)
			}
			if _, res := e.call(readerA, "GET", "/video/v1/assets?live_stream_id="+id, ""); len(list(res)) != 1 || list(res)[0].(map[string]any)["is_live"] != true {
				t.Errorf("%s: asset list while recording %v", c.name, res)
			}
			if err := s.End(context.Background()); err != nil {
				t.Fatal(err)
			}
			if st, _ := e.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/complete", ""); st != 200 {
				t.Fatalf("complete = %d", st)
			}
			done := e.asset(s.Asset.ID)
			if p, _ := done["progress"].(map[string]any); done["is_live"] != false || done["status"] != "ready" || p["state"] != "completed" || p["progress"] != 100.0 {
				t.Errorf("%s: finished asset %v", c.name, done)
			}
			// Asset events: subject (the webhook's object) the asset, key the live stream.
			typ, datas := readEvents(t, e.brokers, id, 9)
			want := "livestream.created,livestream.connected,asset.created,livestream.recording,livestream.active,livestream.disconnected,livestream.idle,asset.ready,asset.live_stream_completed"
			if strings.Join(typ, ",") != want {
				t.Errorf("%s: events %v", c.name, typ)
			}
			for i, ty := range typ {
				if strings.HasPrefix(ty, "asset.") && datas[i]["id"] != s.Asset.ID {
					t.Errorf("%s: %s data %v", c.name, ty, datas[i])
				}
			}
		}
	})
}

// Stream and recording fields of Mux's types, with truthful values.
func TestMuxFields(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	ls := e.create(`{"playback_policy":"public","reduced_latency":true,"audio_only":true,"meta":{"title":"Show"},"simulcast_targets":[],"use_slate_for_standard_latency":false}`)
	if ls["latency_mode"] != "reduced" || ls["reduced_latency"] != true || ls["low_latency"] != false || ls["audio_only"] != true ||
		ls["meta"].(map[string]any)["title"] != "Show" || ls["test"] != false || ls["use_slate_for_standard_latency"] != false {
		t.Fatalf("created %v", ls)
	}
	if st, ok := ls["simulcast_targets"].([]any); !ok || len(st) != 0 {
		t.Fatalf("simulcast_targets %v", ls["simulcast_targets"])
	}
	if _, has := ls["active_ingest_protocol"]; has {
		t.Fatalf("active_ingest_protocol without an encoder: %v", ls)
	}
	id := ls["id"].(string)
	st, res := e.call(writerA, "PATCH", "/video/v1/live-streams/"+id, `{"low_latency":true,"meta":{"title":"Other"}}`)
	if d := data(res); st != 200 || d["latency_mode"] != "low" || d["low_latency"] != true || d["reduced_latency"] != false || d["meta"].(map[string]any)["title"] != "Other" {
		t.Fatalf("patch = %d %v", st, res)
	}
	// The synthetic packets of publish carry no SPS/PPS, which LL-HLS's init section needs: back to standard.
	if st, res := e.call(writerA, "PATCH", "/video/v1/live-streams/"+id, `{"latency_mode":"standard"}`); st != 200 {
		t.Fatalf("patch = %d %v", st, res)
	}
	s := publish(t, e, ls["stream_key"].(string), time.Second, true)
	if cur := e.stream(id); cur["active_ingest_protocol"] != "rtmp" {
		t.Fatalf("active_ingest_protocol while connected: %v", cur["active_ingest_protocol"])
	}
	a := e.asset(s.Asset.ID)
	for k, want := range map[string]any{"ingest_type": "live_rtmp", "encoding_tier": "baseline", "video_quality": "basic",
		"master_access": "none", "max_resolution_tier": "2160p", "test": false} {
		if a[k] != want {
			t.Errorf("asset %s = %v, want %v", k, a[k], want)
		}
	}
	if err := s.End(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// What Spacecast does not implement is a 400 naming the feature, and changes nothing.
func TestUnimplementedFeaturesAreNamed(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	id := e.create(`{"playback_policy":"public"}`)["id"].(string)
	cases := []struct{ method, path, body, want string }{
		{"POST", "", `{"simulcast_targets":[{"url":"http://x/app"}]}`, "simulcast_targets[0].url: must use rtmp:// or rtmps://"},
		{"POST", "", `{"embedded_subtitles":[{"name":"en","language_channel":"cc1"}]}`, "embedded subtitles"},
		{"POST", "", `{"generated_subtitles":[{"name":"en"}]}`, "generated subtitles"},
		{"POST", "", `{"reconnect_slate_url":"https://x/slate.png"}`, "reconnect slates"},
		{"POST", "", `{"use_slate_for_standard_latency":true}`, "reconnect slates"},
		{"POST", "", `{"advanced_playback_policies":[{"policy":"drm"}]}`, "DRM"},
		{"POST", "", `{"new_asset_settings":{"mp4_support":"high"}}`, "new_asset_settings.mp4_support: want"},
		{"POST", "", `{"new_asset_settings":{"static_renditions":[{"resolution":"4k"}]}}`, "new_asset_settings.static_renditions[0].resolution: want"},
		{"POST", "", `{"new_asset_settings":{"static_renditions":[{"resolution":"capped-1080p"}]}}`, "new_asset_settings.static_renditions[0].resolution: want"},
		{"POST", "", `{"new_asset_settings":{"static_renditions":[{"resolution":"highest"},{"resolution":"highest"}]}}`, "asked for twice"},
		{"POST", "", `{"new_asset_settings":{"static_renditions":[{"resolution":"highest","colour":"red"}]}}`, "static_renditions[0].colour: unknown field"},
		{"POST", "", `{"new_asset_settings":{"static_renditions":{"resolution":"highest"}}}`, "static_renditions: want an array"},
		{"POST", "", `{"new_asset_settings":{"mp4_support":"capped-1080p","static_renditions":[{"resolution":"highest"}]}}`, "cannot both be set"},
		{"POST", "", `{"new_asset_settings":{"max_resolution_tier":"720p"}}`, "new_asset_settings.max_resolution_tier: want"},
		{"POST", "", `{"new_asset_settings":{"colour":"red"}}`, "new_asset_settings.colour"},
		{"POST", "", `{"new_asset_settings":{"playback_policy":"private"}}`, "new_asset_settings.playback_policy"},
		{"POST", "", `{"reduced_latency":true,"latency_mode":"low"}`, "reduced_latency"},
		{"POST", "", `{"meta":{"creator_id":"c"}}`, "meta.creator_id"},
		{"PATCH", "/" + id, `{"reconnect_slate_url":"https://x/slate.png"}`, "reconnect slates"},
		{"PATCH", "/" + id, `{"new_asset_settings":{"static_renditions":[{"resolution":"720"}]}}`, "static_renditions[0].resolution: want"},
		{"PUT", "/" + id + "/new-asset-settings/static-renditions", `{"static_renditions":[{"resolution":"1081p"}]}`, "static_renditions[0].resolution: want"},
		{"POST", "/" + id + "/playback-ids", `{"policy":"drm"}`, "DRM"},
	}
	for _, c := range cases {
		st, res := e.call(writerA, c.method, "/video/v1/live-streams"+c.path, c.body)
		if st != 400 || !strings.Contains(messages(res), c.want) {
			t.Errorf("%s %s %s: %d %v, want 400 naming %q", c.method, c.path, c.body, st, res, c.want)
		}
	}
	if st, res := e.call(writerA, "POST", "/video/v1/assets", `{"inputs":[{"url":"https://example.com/a.mp4"}]}`); st != 400 ||
		!strings.Contains(messages(res), "creating assets from a URL or a direct upload is not supported") {
		t.Errorf("POST /video/v1/assets: %d %v, want 400 naming the missing feature", st, res)
	}
	for _, c := range []struct{ method, path, want string }{
		{"PUT", "/video/v1/live-streams/" + id + "/embedded-subtitles", "embedded subtitles"},
		{"PUT", "/video/v1/assets/a1/master-access", "master access"},
		{"POST", "/video/v1/assets/a1/tracks", "asset tracks"},
		{"POST", "/video/v1/uploads", "direct uploads"},
		{"GET", "/video/v1/playback-restrictions/r1", "playback restrictions"},
		{"GET", "/data/v1/metrics/comparison", "Mux Data"},
		{"PATCH", "/video/v1/assets/a1", "updating an asset"},
	} {
		if st, res := e.call(writerA, c.method, c.path, "{}"); st != 400 || !strings.Contains(messages(res), c.want) {
			t.Errorf("%s %s: %d %v, want 400 naming %q", c.method, c.path, st, res, c.want)
		}
	}
	if _, res := e.call(readerA, "GET", "/video/v1/live-streams", ""); len(list(res)) != 1 {
		t.Fatalf("refused creates left rows: %v", res)
	}
	// What Spacecast does anyway is accepted.
	if st, res := e.call(writerA, "POST", "/video/v1/live-streams", `{"simulcast_targets":[],"new_asset_settings":{"master_access":"none","mp4_support":"none"}}`); st != 201 {
		t.Fatalf("create with the values Spacecast implements = %d %v", st, res)
	}
}

// Playback id routes: what a playback id belongs to, and an asset's playback ids.
func TestPlaybackIDRoutes(t *testing.T) {
	e := setup(t, testenv.SQLBackends(t)[0])
	ls := e.create(`{"playback_policy":"public","new_asset_settings":{"playback_policy":"signed"}}`)
	id := ls["id"].(string)
	lpid := ls["playback_ids"].([]any)[0].(map[string]any)["id"].(string)
	s := publish(t, e, ls["stream_key"].(string), time.Second, false)
	aid := s.Asset.ID
	apid := e.asset(aid)["playback_ids"].([]any)[0].(map[string]any)["id"].(string)

	for _, c := range []struct{ pid, policy, typ, obj string }{{lpid, "public", "live_stream", id}, {apid, "signed", "asset", aid}} {
		st, res := e.call(readerA, "GET", "/video/v1/playback-ids/"+c.pid, "")
		d := data(res)
		o, _ := d["object"].(map[string]any)
		if st != 200 || d["id"] != c.pid || d["policy"] != c.policy || o["type"] != c.typ || o["id"] != c.obj {
			t.Errorf("playback id %s = %d %v, want %s of %s %s", c.pid, st, res, c.policy, c.typ, c.obj)
		}
		if st, _ := e.call(writerB, "GET", "/video/v1/playback-ids/"+c.pid, ""); st != 404 {
			t.Errorf("other environment's playback id = %d, want 404", st)
		}
	}
	if st, _ := e.call(readerA, "GET", "/video/v1/playback-ids/nope", ""); st != 404 {
		t.Errorf("unknown playback id = %d", st)
	}

	if st, res := e.call(readerA, "GET", "/video/v1/assets/"+aid+"/playback-ids/"+apid, ""); st != 200 || data(res)["policy"] != "signed" {
		t.Fatalf("asset playback id = %d %v", st, res)
	}
	st, res := e.call(writerA, "POST", "/video/v1/assets/"+aid+"/playback-ids", `{"policy":"public"}`)
	npid, _ := data(res)["id"].(string)
	if st != 201 || npid == "" || data(res)["policy"] != "public" {
		t.Fatalf("add asset playback id = %d %v", st, res)
	}
	if got := policiesOf(e.asset(aid)["playback_ids"]); !slices.Equal(got, []string{"public", "signed"}) {
		t.Fatalf("asset playback ids after add: %v", got)
	}
	if st, _, _ := e.get("/stream/" + npid + ".m3u8"); st != 200 {
		t.Fatalf("the new public playback id of the recording plays: %d", st)
	}
	if st, _ := e.call(readerA, "POST", "/video/v1/assets/"+aid+"/playback-ids", `{"policy":"public"}`); st != 403 {
		t.Fatalf("reader adds a playback id: %d", st)
	}
	if st, _ := e.call(writerA, "POST", "/video/v1/assets/"+aid+"/playback-ids", `{"policy":"open"}`); st != 400 {
		t.Fatalf("bad policy: %d", st)
	}
	if st, _ := e.call(writerB, "DELETE", "/video/v1/assets/"+aid+"/playback-ids/"+npid, ""); st != 404 {
		t.Fatalf("other environment deletes: %d", st)
	}
	if st, _ := e.call(writerA, "DELETE", "/video/v1/assets/"+aid+"/playback-ids/"+npid, ""); st != 204 {
		t.Fatalf("delete asset playback id = %d", st)
	}
	if st, _ := e.call(readerA, "GET", "/video/v1/assets/"+aid+"/playback-ids/"+npid, ""); st != 404 {
		t.Fatalf("deleted asset playback id = %d", st)
	}
	if st, _ := e.call(writerA, "DELETE", "/video/v1/assets/"+aid+"/playback-ids/"+npid, ""); st != 404 {
		t.Fatalf("delete again = %d", st)
	}
	if st, _ := e.call(readerA, "GET", "/video/v1/assets/nope/playback-ids/"+apid, ""); st != 404 {
		t.Fatalf("unknown asset = %d", st)
	}
	if st, _ := e.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/complete", ""); st != 200 {
		t.Fatal("complete")
	}
	// asset.updated for each change, with the asset as subject.
	typ, datas := readEvents(t, e.brokers, id, 9)
	var n int
	for i, ty := range typ {
		if ty == "asset.updated" {
			n++
			if datas[i]["id"] != aid {
				t.Errorf("asset.updated data %v", datas[i])
			}
		}
	}
	if n != 2 {
		t.Errorf("events %v, want two asset.updated", typ)
	}
}

// A recording published by ffmpeg describes its media as Mux does: tracks, aspect ratio,
// resolution tier, stored resolution and frame rate, and one recording time per connection.
func TestFFmpegRecordingDescribesMedia(t *testing.T) {
	needFFmpeg(t)
	e := setup(t, testenv.SQLBackends(t)[0])
	ls := e.create(`{"playback_policy":"public","reconnect_window":30,"new_asset_settings":{"playback_policy":"public"}}`)
	id, key := ls["id"].(string), ls["stream_key"].(string)
	for range 2 { // two connections inside the window: one asset, two recording times
		if err := publishFFmpeg(t, e.rtmpURL(key), 3*time.Second).wait(t, time.Minute); err != nil {
			t.Fatalf("ffmpeg: %v", err)
		}
	}
	var aid string
	testenv.Eventually(t, 10*time.Second, func() bool {
		cur := e.stream(id)
		aid, _ = cur["active_asset_id"].(string)
		return aid != "" && cur["active_ingest_protocol"] == nil
	}, "no disconnected recording")
	live := e.asset(aid)
	if live["is_live"] != true || len(live["recording_times"].([]any)) != 2 {
		t.Fatalf("asset between connections %v", live)
	}
	if st, _ := e.call(writerA, "PUT", "/video/v1/live-streams/"+id+"/complete", ""); st != 200 {
		t.Fatal("complete")
	}
	a := e.asset(aid)
	for k, want := range map[string]any{"aspect_ratio": "4:3", "resolution_tier": "720p", "max_stored_resolution": "SD",
		"max_stored_frame_rate": 25.0, "status": "ready"} {
		if a[k] != want {
			t.Errorf("asset %s = %v, want %v", k, a[k], want)
		}
	}
	tracks, _ := a["tracks"].([]any)
	if len(tracks) != 2 {
		t.Fatalf("tracks %v", a["tracks"])
	}
	v, au := tracks[0].(map[string]any), tracks[1].(map[string]any)
	if v["type"] != "video" || v["max_width"] != 320.0 || v["max_height"] != 240.0 || v["max_frame_rate"] != 25.0 ||
		v["status"] != "ready" || v["duration"] != a["duration"] {
		t.Errorf("video track %v", v)
	}
	if au["type"] != "audio" || au["max_channels"] != 1.0 || au["status"] != "ready" {
		t.Errorf("audio track %v", au)
	}
	var total float64
	for _, r := range a["recording_times"].([]any) {
		rt := r.(map[string]any)
		if _, err := time.Parse(time.RFC3339, rt["started_at"].(string)); err != nil || rt["type"] != "content" {
			t.Errorf("recording time %v", rt)
		}
		total += rt["duration"].(float64)
	}
	if total < 4 || total > 12 {
		t.Errorf("recording times add up to %.1f s for two 3 s connections: %v", total, a["recording_times"])
	}
}
