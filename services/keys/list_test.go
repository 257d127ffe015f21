package keys_test

import (
	"fmt"
	"net/url"
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

func TestListsWalkEveryPageByCursor(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		create := func(path, body string) string {
			st, b := e.call(admin, "POST", path, body)
			if st != 201 {
				t.Fatalf("create %s: %d %v", path, st, b)
			}
			return data(b)["id"].(string)
		}
		// What exists before each walk, newest first (the bootstrap rows included).
		existing := func(path string) []string {
			st, body := e.call(admin, "GET", path+"?limit=100", "")
			if st != 200 {
				t.Fatalf("%s: %d %v", path, st, body)
			}
			var ids []string
			for _, r := range body["data"].([]any) {
				ids = append(ids, r.(map[string]any)["id"].(string))
			}
			return ids
		}
		lists := []struct {
			path string
			make func() string
		}{
			{"/system/v1/environments", func() string { return create("/system/v1/environments", `{"name":"env"}`) }},
			{"/system/v1/access-tokens", func() string {
				return create("/system/v1/access-tokens", `{"name":"t","environment_id":"`+e.envA+`","permissions":["video:read"]}`)
			}},
			{"/system/v1/signing-keys", func() string { return create("/system/v1/signing-keys", "") }},
		}
		for _, l := range lists {
			t.Run(strings.TrimPrefix(l.path, "/system/v1/"), func(t *testing.T) {
				for i := 0; i < 11; i++ {
					l.make()
				}
				want := existing(l.path)
				got := e.walk(admin, l.path, 4, func(int, []string) { l.make() })
				if !slices.Equal(got, want) {
					t.Fatalf("cursor walk served %v\nwant the rows that existed when it started, newest first: %v", got, want)
				}
				st, body := e.call(admin, "GET", l.path+"?limit=100&page=1000000", "")
				if eb, _ := body["error"].(map[string]any); st != 400 || !strings.Contains(fmt.Sprint(eb["messages"]), "cursor") {
					t.Fatalf("deep page: %d %v, want 400 pointing at cursor", st, body)
				}
			})
		}
		// The token list's environment filter holds across pages.
		got := e.walk(admin, "/system/v1/access-tokens?environment_id="+url.QueryEscape(e.envA), 3, nil)
		if len(got) < 10 {
			t.Fatalf("filtered walk served %d tokens", len(got))
		}
	})
}

func TestControlCharactersAreRefused(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		before := e.count("environments")
		for _, tt := range []struct{ method, path, body, mentions string }{
			{"POST", "/system/v1/environments", `{"name":"a\u0000b"}`, `field "name"`},
			{"POST", "/system/v1/access-tokens", `{"name":"a\u0000","environment_id":"` + e.envA + `","permissions":["video:read"]}`, `field "name"`},
			{"GET", "/system/v1/access-tokens/a%00b", "", `path parameter "id"`},
			{"GET", "/system/v1/environments/%FF", "", `path parameter "id"`},
			{"GET", "/system/v1/signing-keys/a%00b", "", `path parameter "id"`},
			{"GET", "/system/v1/access-tokens?environment_id=a%00b", "", `query parameter "environment_id"`},
		} {
			st, body := e.call(admin, tt.method, tt.path, tt.body)
			if eb, _ := body["error"].(map[string]any); st != 400 || !strings.Contains(fmt.Sprint(eb["messages"]), tt.mentions) {
				t.Fatalf("%s %s %q: %d %v, want 400 mentioning %s", tt.method, tt.path, tt.body, st, body, tt.mentions)
			}
		}
		if e.count("environments") != before {
			t.Fatal("a refused request stored something")
		}
	})
}
