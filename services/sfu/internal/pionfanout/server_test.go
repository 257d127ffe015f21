package pionfanout

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Offers that are not SDP are refused, and a refused publish does not keep the publisher's
// place; the handler serves only POST on its two paths.
func TestSignallingRefusals(t *testing.T) {
	s, err := New("127.0.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	cases := []struct {
		method, path, body string
		want               int
	}{
		{http.MethodPost, PublishPath, "not sdp", http.StatusBadRequest},
		{http.MethodPost, PublishPath, "still not sdp", http.StatusBadRequest}, // not 409: the first failed
		{http.MethodPost, SubscribePath, "", http.StatusBadRequest},
		{http.MethodGet, SubscribePath, "", http.StatusMethodNotAllowed},
		{http.MethodPost, "/other", "", http.StatusNotFound},
	}
	for _, tc := range cases {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
		if rec.Code != tc.want {
			t.Errorf("%s %s %q: %d, want %d (%s)", tc.method, tc.path, tc.body, rec.Code, tc.want, strings.TrimSpace(rec.Body.String()))
		}
	}
	if s.pub.Load() != nil {
		t.Fatal("a failed publish left a publisher")
	}
}
