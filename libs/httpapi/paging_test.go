package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/httpapi"
)

func TestPageOfAndList(t *testing.T) {
	type row struct {
		ID string `json:"id"`
	}
	keys := []httpapi.Key{{Time: 30, ID: "c"}, {Time: 20, ID: "b"}, {Time: 10, ID: "a"}}
	rows := []row{{"c"}, {"b"}, {"a"}}
	tests := []struct {
		limit, n int
		wantRows int
		next     string
		body     string
	}{
		{limit: 2, n: 3, wantRows: 2, next: keys[1].Cursor(), body: `{"data":[{"id":"c"},{"id":"b"}],"next_cursor":"` + keys[1].Cursor() + `"}`},
		{limit: 3, n: 3, wantRows: 3, body: `{"data":[{"id":"c"},{"id":"b"},{"id":"a"}],"next_cursor":null}`},
		{limit: 5, n: 1, wantRows: 1, body: `{"data":[{"id":"c"}],"next_cursor":null}`},
		{limit: 5, n: 0, wantRows: 0, body: `{"data":[],"next_cursor":null}`},
	}
	for _, tt := range tests {
		got, next := httpapi.PageOf(httpapi.Page{Limit: tt.limit}, rows[:tt.n], keys[:tt.n])
		if len(got) != tt.wantRows || next != tt.next {
			t.Fatalf("limit %d of %d rows: %d rows, next %q; want %d, %q", tt.limit, tt.n, len(got), next, tt.wantRows, tt.next)
		}
		if tt.n == 0 {
			got = nil // a store's empty result
		}
		rec := httptest.NewRecorder()
		c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/", nil), rec)
		if err := httpapi.List(c, got, next); err != nil {
			t.Fatal(err)
		}
		if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != tt.body {
			t.Fatalf("List: %d %s, want %s", rec.Code, rec.Body.String(), tt.body)
		}
	}
	k, err := httpapi.ParseCursor(keys[0].Cursor())
	if err != nil || k != keys[0] {
		t.Fatalf("cursor round trip: %+v %v", k, err)
	}
}
