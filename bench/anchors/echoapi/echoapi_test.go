package echoapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

func TestEchoAPI(t *testing.T) {
	ctx := context.Background()
	s, err := New(ctx, Config{DBPath: filepath.Join(t.TempDir(), "a.db"), TokenID: "id", TokenSecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	do := func(method, path, body, id, secret string) (int, []byte) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if id != "" {
			req.SetBasicAuth(id, secret)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	count := func(table string) int {
		var n int
		if err := s.db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	cases := []struct {
		name, method, path, body, id, secret string
		want                                 int
	}{
		{"no credentials", "POST", "/video/v1/spaces", `{}`, "", "", 401},
		{"wrong secret", "POST", "/video/v1/spaces", `{}`, "id", "nope", 401},
		{"wrong id", "GET", "/video/v1/spaces/x", ``, "other", "secret", 401},
		{"bad json", "POST", "/video/v1/spaces", `{`, "id", "secret", 400},
		{"unknown space", "GET", "/video/v1/spaces/x", ``, "id", "secret", 404},
	}
	for _, c := range cases {
		if st, b := do(c.method, c.path, c.body, c.id, c.secret); st != c.want {
			t.Errorf("%s: status %d, want %d (%s)", c.name, st, c.want, b)
		}
	}
	if count("spaces") != 0 || count("outbox") != 0 {
		t.Fatal("refused requests wrote rows")
	}
	st, b := do("POST", "/video/v1/spaces", `{"passthrough":"p"}`, "id", "secret")
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	var created struct {
		Data struct {
			ID          string `json:"id"`
			Passthrough string `json:"passthrough"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &created); err != nil || created.Data.ID == "" || created.Data.Passthrough != "p" {
		t.Fatalf("create body %s: %v", b, err)
	}
	if count("spaces") != 1 || count("outbox") != 1 {
		t.Fatalf("create wrote %d spaces and %d outbox rows, want 1 and 1", count("spaces"), count("outbox"))
	}
	st, got := do("GET", "/video/v1/spaces/"+created.Data.ID, ``, "id", "secret")
	if st != 200 || string(got) != string(b) {
		t.Fatalf("get: %d %s, want the created body %s", st, got, b)
	}
}
