package livestream_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/testenv"
)

// walk lists path page by page with ?cursor= (the Mux SDKs' cursor iterator), calling between
// after each page, and returns the ids in the order served.
func (e *env) walk(c creds, path string, limit int, between func(page int, ids []string)) []string {
	e.t.Helper()
	return testenv.WalkCursor(e.t, path, limit, func(p string) (int, map[string]any) { return e.call(c, "GET", p, "") }, between)
}

func TestLiveStreamListWalksEveryPageByCursor(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		var want []string
		for i := 0; i < 13; i++ {
			want = append(want, e.create(`{}`)["id"].(string))
			if st, _ := e.call(writerB, "POST", "/video/v1/live-streams", `{}`); st != 201 {
				t.Fatal("create in env B")
			}
		}
		slices.Reverse(want)
		got := e.walk(readerA, "/video/v1/live-streams", 4, func(page int, ids []string) {
			e.create(`{}`) // new streams arrive while the walk runs
			if page == 1 {
				if st, body := e.call(writerA, "DELETE", "/video/v1/live-streams/"+ids[len(ids)-1], ""); st != 204 {
					t.Fatalf("delete: %d %v", st, body)
				}
			}
		})
		if !slices.Equal(got, want) {
			t.Fatalf("cursor walk served %v\nwant the streams that existed when it started, newest first: %v", got, want)
		}
		// Filters hold across pages.
		idle := e.walk(readerA, "/video/v1/live-streams?status=idle", 5, nil)
		if len(idle) != 13+3-1 { // 13, one more per page boundary of the first walk, minus the deleted one
			t.Fatalf("status=idle walk served %d streams", len(idle))
		}
		if got := e.walk(readerA, "/video/v1/live-streams?status=disabled", 5, nil); len(got) != 0 {
			t.Fatalf("status=disabled: %v", got)
		}
		st, body := e.call(readerA, "GET", "/video/v1/live-streams?limit=100&page=1000000", "")
		if st != 400 || !strings.Contains(messages(body), "cursor") {
			t.Fatalf("deep page: %d %v, want 400 pointing at cursor", st, body)
		}
	})
}

func TestAssetListWalksEveryPageByCursor(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ls := e.create(`{}`)["id"].(string)
		other := e.create(`{}`)["id"].(string)
		base := time.Now().UnixNano()
		insert := func(id, stream string, ns int64) {
			if _, err := e.db.Exec(`INSERT INTO assets (id, environment_id, live_stream_id, status, created_ns, updated_ns) VALUES ($1, 'envA', $2, 'ready', $3, $3)`,
				id, stream, ns); err != nil {
				t.Fatal(err)
			}
		}
		var want, wantOfLS []string
		for i := 0; i < 9; i++ {
			// Three assets share each creation time: the id breaks the tie, across page boundaries too.
			for _, suffix := range []string{"c", "b", "a"} {
				id := fmt.Sprintf("as%02d%s", 8-i, suffix)
				if suffix != "b" { // "b" belongs to the other stream
					wantOfLS = append(wantOfLS, id)
				}
				want = append(want, id)
			}
		}
		for i := 0; i < 9; i++ {
			ns := base + int64(i)*1000
			insert(fmt.Sprintf("as%02da", i), ls, ns)
			insert(fmt.Sprintf("as%02db", i), other, ns)
			insert(fmt.Sprintf("as%02dc", i), ls, ns)
		}
		n := 0
		got := e.walk(readerA, "/video/v1/assets", 4, func(int, []string) {
			n++
			insert(fmt.Sprintf("new%02d", n), ls, time.Now().UnixNano()+int64(time.Hour)) // newer than all: never served by this walk
		})
		if !slices.Equal(got, want) {
			t.Fatalf("cursor walk served %v\nwant %v", got, want)
		}
		if got := e.walk(readerA, "/video/v1/assets?live_stream_id="+ls, 5, nil); len(got) != len(wantOfLS)+n || !slices.Equal(got[n:], wantOfLS) {
			t.Fatalf("live_stream_id walk served %v\nwant %d new then %v", got, n, wantOfLS)
		}
		if st, body := e.call(writerB, "GET", "/video/v1/assets", ""); st != 200 || len(list(body)) != 0 {
			t.Fatalf("env B sees env A's assets: %v", body)
		}
	})
}

func TestControlCharactersAreRefused(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		id := e.create(`{}`)["id"].(string)
		for _, tt := range []struct{ method, path, body, mentions string }{
			{"POST", "/video/v1/live-streams", `{"passthrough":"a\u0000b"}`, `field "passthrough"`},
			{"PATCH", "/video/v1/live-streams/" + id, `{"passthrough":"\u0000"}`, `field "passthrough"`},
			{"POST", "/video/v1/live-streams", `{"new_asset_settings":{"passthrough":"x\u0000"}}`, `field "new_asset_settings.passthrough"`},
			{"POST", "/video/v1/live-streams", `{"playback_policies":["public","\u0000"]}`, `field "playback_policies[1]"`},
			{"GET", "/video/v1/live-streams/a%00b", "", `path parameter "id"`},
			{"GET", "/video/v1/assets/a%00b", "", `path parameter "id"`},
			{"GET", "/video/v1/live-streams?stream_key=a%00b", "", `query parameter "stream_key"`},
			{"GET", "/video/v1/assets?live_stream_id=%FF", "", `query parameter "live_stream_id"`},
		} {
			st, body := e.call(writerA, tt.method, tt.path, tt.body)
			if eb, _ := body["error"].(map[string]any); st != 400 || !strings.Contains(fmt.Sprint(eb["messages"]), tt.mentions) {
				t.Fatalf("%s %s %q: %d %v, want 400 mentioning %s", tt.method, tt.path, tt.body, st, body, tt.mentions)
			}
		}
	})
}
