package spacesapi_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/spacecast/spacecast/libs/testenv"
)

// walk lists path page by page with ?cursor= (the Mux SDKs' cursor iterator), calling between
// after each page, and returns the ids in the order served.
func (e *env) walk(c creds, path string, limit int, between func(page int, ids []string)) []string {
	e.t.Helper()
	return testenv.WalkCursor(e.t, path, limit, func(p string) (int, map[string]any) { return e.call(c, "GET", p, "") }, between)
}

func TestListWalksEveryPageByCursor(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		create := func(c creds) string {
			st, body := e.call(c, "POST", "/video/v1/spaces", "{}")
			if st != 201 {
				t.Fatalf("create: %d %v", st, body)
			}
			return data(body)["id"].(string)
		}
		var want []string
		for i := 0; i < 23; i++ {
			want = append(want, create(writerA))
			create(writerB) // another environment's rows interleave and never show
		}
		slices.Reverse(want) // newest first
		var deleted []string
		got := e.walk(readerA, "/video/v1/spaces", 5, func(page int, ids []string) {
			create(writerA) // new rows arrive while the walk runs
			if page == 2 {
				// Deleting the row the cursor points at must not end or skip the walk.
				last := ids[len(ids)-1]
				if st, body := e.call(writerA, "DELETE", "/video/v1/spaces/"+last, ""); st != 204 {
					t.Fatalf("delete: %d %v", st, body)
				}
				deleted = append(deleted, last)
			}
		})
		if !slices.Equal(got, want) {
			t.Fatalf("cursor walk served %d ids:\n%v\nwant the %d that existed when it started, newest first:\n%v", len(got), got, len(want), want)
		}
		// The page form serves the same order, and its next_cursor continues it.
		st, body := e.call(readerA, "GET", "/video/v1/spaces?limit=4&page=2", "")
		if st != 200 || len(body["data"].([]any)) != 4 || body["next_cursor"] == nil {
			t.Fatalf("page form: %d %v", st, body)
		}
		// Deep pages are refused in the page form, pointing at the cursor.
		st, body = e.call(readerA, "GET", "/video/v1/spaces?limit=100&page=1000000", "")
		if eb, _ := body["error"].(map[string]any); st != 400 || !strings.Contains(fmt.Sprint(eb["messages"]), "cursor") {
			t.Fatalf("deep page: %d %v, want 400 pointing at cursor", st, body)
		}
		st, body = e.call(readerA, "GET", "/video/v1/spaces?cursor=bogus", "")
		if st != 400 {
			t.Fatalf("bad cursor: %d %v", st, body)
		}
	})
}

func TestControlCharactersAreRefusedNotStored(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		before := e.count("spaces")
		for _, tt := range []struct{ method, path, body, mentions string }{
			{"POST", "/video/v1/spaces", `{"passthrough":"a\u0000b"}`, `field "passthrough"`},
			{"POST", "/video/v1/spaces", `{"passthrough":"a\u0085b"}`, `field "passthrough"`},
			{"POST", "/video/v1/spaces", "{\"passthrough\":\"\xff\"}", "UTF-8"},
			{"GET", "/video/v1/spaces/a%00b", "", `path parameter "id"`},
			{"GET", "/video/v1/spaces/%FF", "", `path parameter "id"`},
			{"DELETE", "/video/v1/spaces/a%00b", "", `path parameter "id"`},
			{"GET", "/video/v1/spaces?page=1&x=%00", "", `query parameter "x"`},
		} {
			st, body := e.call(writerA, tt.method, tt.path, tt.body)
			if eb, _ := body["error"].(map[string]any); st != 400 || !strings.Contains(fmt.Sprint(eb["messages"]), tt.mentions) {
				t.Fatalf("%s %s %q: %d %v, want 400 mentioning %s", tt.method, tt.path, tt.body, st, body, tt.mentions)
			}
		}
		if e.count("spaces") != before {
			t.Fatal("a refused request stored a space")
		}
	})
}
