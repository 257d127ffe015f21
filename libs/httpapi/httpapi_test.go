package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spacecast/spacecast/libs/httpapi"
)

type bindReq struct {
	Name    string   `json:"name"`
	Count   int      `json:"count"`
	Enabled bool     `json:"enabled"`
	Tags    []string `json:"tags"`
	Nested  struct {
		Level int `json:"level"`
	} `json:"nested"`
}

// syncBuf is a log sink safe for the server's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type testServer struct {
	*httptest.Server
	log *syncBuf
	reg *prometheus.Registry
}

// newServer serves httpapi.NewServer with test routes; handlerErr is what GET /err/:name returns.
func newServer(t *testing.T, checks []httpapi.Check, handlerErr map[string]error) *testServer {
	t.Helper()
	logs := &syncBuf{}
	reg := prometheus.NewRegistry()
	e := httpapi.NewServer(httpapi.Options{
		Logger:    slog.New(slog.NewTextHandler(logs, nil)),
		Registry:  reg,
		Checks:    checks,
		BodyLimit: "2K",
	})
	e.POST("/bind", func(c echo.Context) error {
		var r bindReq
		if err := httpapi.Bind(c, &r); err != nil {
			return err
		}
		return httpapi.Data(c, http.StatusCreated, r)
	})
	e.GET("/paging", func(c echo.Context) error {
		p, err := httpapi.Paging(c)
		if err != nil {
			return err
		}
		if p.Cursor {
			return httpapi.Data(c, http.StatusOK, map[string]any{"limit": p.Limit, "after_time": p.After.Time, "after_id": p.After.ID})
		}
		return httpapi.Data(c, http.StatusOK, map[string]int{"limit": p.Limit, "page": p.Page, "offset": p.Offset})
	})
	e.GET("/err/:name", func(c echo.Context) error { return handlerErr[c.Param("name")] })
	e.HEAD("/err/:name", func(c echo.Context) error { return handlerErr[c.Param("name")] })
	e.GET("/panic", func(c echo.Context) error { panic("secret panic detail: password=hunter2") })
	e.POST("/empty", httpapi.Empty)
	e.GET("/html", func(c echo.Context) error { return httpapi.Data(c, http.StatusOK, "<a&b>") })
	s := httptest.NewServer(e)
	t.Cleanup(s.Close)
	return &testServer{Server: s, log: logs, reg: reg}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (s *testServer) do(t *testing.T, method, path, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: string(b)}
}

type envelope struct {
	Error *struct {
		Type     string   `json:"type"`
		Messages []string `json:"messages"`
	} `json:"error"`
}

// errorOf parses an error envelope strictly (no other members) and checks its status and type.
func errorOf(t *testing.T, r response, status int, typ string) []string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var env envelope
	dec := json.NewDecoder(strings.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || env.Error == nil {
		t.Fatalf("body is not an error envelope (%v): %s", err, r.body)
	}
	if env.Error.Type != typ || len(env.Error.Messages) == 0 || env.Error.Messages[0] == "" {
		t.Fatalf("envelope %s, want type %q with a message", r.body, typ)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error content type %q", ct)
	}
	return env.Error.Messages
}

func TestBind(t *testing.T) {
	s := newServer(t, nil, nil)
	tests := []struct {
		name    string
		body    string
		want    string   // decoded request, for successes
		msgHas  []string // message fragments, for 400s
		wantErr bool
	}{
		{name: "empty body is {}", body: "", want: `{"name":"","count":0,"enabled":false,"tags":null,"nested":{"level":0}}`},
		{name: "whitespace body is {}", body: " \n\t ", want: `{"name":"","count":0,"enabled":false,"tags":null,"nested":{"level":0}}`},
		{name: "empty object", body: "{}", want: `{"name":"","count":0,"enabled":false,"tags":null,"nested":{"level":0}}`},
		{name: "all fields", body: `{"name":"a","count":2,"enabled":true,"tags":["x"],"nested":{"level":3}}`,
			want: `{"name":"a","count":2,"enabled":true,"tags":["x"],"nested":{"level":3}}`},
		{name: "trailing whitespace", body: "{\"name\":\"a\"}\n", want: `{"name":"a","count":0,"enabled":false,"tags":null,"nested":{"level":0}}`},
		{name: "unknown field", body: `{"name":"a","colour":"red"}`, wantErr: true, msgHas: []string{`"colour"`, "unknown field"}},
		{name: "unknown nested field", body: `{"nested":{"levle":1}}`, wantErr: true, msgHas: []string{`"levle"`}},
		{name: "string for number", body: `{"count":"2"}`, wantErr: true, msgHas: []string{`"count"`, "a number", "string"}},
		{name: "number for string", body: `{"name":5}`, wantErr: true, msgHas: []string{`"name"`, "a string"}},
		{name: "number for bool", body: `{"enabled":1}`, wantErr: true, msgHas: []string{`"enabled"`, "a boolean"}},
		{name: "string for array", body: `{"tags":"x"}`, wantErr: true, msgHas: []string{`"tags"`, "an array"}},
		{name: "fraction for int", body: `{"count":1.5}`, wantErr: true, msgHas: []string{`"count"`}},
		{name: "nested type error names the path", body: `{"nested":{"level":"high"}}`, wantErr: true, msgHas: []string{`"nested.level"`}},
		{name: "object for nested scalar", body: `{"nested":{"level":{}}}`, wantErr: true, msgHas: []string{`"nested.level"`}},
		{name: "second object", body: `{"name":"a"} {"name":"b"}`, wantErr: true, msgHas: []string{"after the JSON object"}},
		{name: "trailing garbage", body: `{"name":"a"} x`, wantErr: true, msgHas: []string{"after the JSON object"}},
		{name: "trailing brace", body: `{"name":"a"}}`, wantErr: true, msgHas: []string{"after the JSON object"}},
		{name: "trailing bracket", body: `{"name":"a"}]`, wantErr: true, msgHas: []string{"after the JSON object"}},
		{name: "truncated", body: `{"name":`, wantErr: true, msgHas: []string{"malformed JSON"}},
		{name: "missing colon", body: `{"name" "a"}`, wantErr: true, msgHas: []string{"malformed JSON"}},
		{name: "single quotes", body: `{'name':'a'}`, wantErr: true, msgHas: []string{"malformed JSON"}},
		{name: "array", body: `[{"name":"a"}]`, wantErr: true, msgHas: []string{"JSON object"}},
		{name: "null", body: `null`, wantErr: true, msgHas: []string{"JSON object"}},
		{name: "string", body: `"a"`, wantErr: true, msgHas: []string{"JSON object"}},
		{name: "number", body: `42`, wantErr: true, msgHas: []string{"JSON object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(t, http.MethodPost, "/bind", tt.body)
			if !tt.wantErr {
				if r.status != http.StatusCreated || strings.TrimSpace(r.body) != `{"data":`+tt.want+`}` {
					t.Fatalf("%d %s, want 201 {\"data\":%s}", r.status, r.body, tt.want)
				}
				return
			}
			msgs := errorOf(t, r, http.StatusBadRequest, "invalid_parameters")
			for _, frag := range tt.msgHas {
				if !strings.Contains(msgs[0], frag) {
					t.Errorf("message %q does not contain %q", msgs[0], frag)
				}
			}
		})
	}
	t.Run("body over the limit", func(t *testing.T) {
		r := s.do(t, http.MethodPost, "/bind", `{"name":"`+strings.Repeat("x", 4096)+`"}`)
		errorOf(t, r, http.StatusRequestEntityTooLarge, "payload_too_large")
	})
	t.Run("chunked body over the limit", func(t *testing.T) {
		// No Content-Length: the limit is found while reading.
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/bind", io.MultiReader(strings.NewReader(`{"name":"`+strings.Repeat("x", 4096)), strings.NewReader(`"}`)))
		req.ContentLength = -1
		res, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		errorOf(t, response{status: res.StatusCode, header: res.Header, body: string(b)}, http.StatusRequestEntityTooLarge, "payload_too_large")
	})
}

func TestPaging(t *testing.T) {
	s := newServer(t, nil, nil)
	tests := []struct {
		query               string
		limit, page, offset int    // for successes
		cursor              string // for cursor successes: the decoded cursor
		bad                 string
	}{
		{query: "", limit: 25, page: 1, offset: 0},
		{query: "?limit=1", limit: 1, page: 1, offset: 0},
		{query: "?limit=100", limit: 100, page: 1, offset: 0},
		{query: "?page=1", limit: 25, page: 1, offset: 0},
		{query: "?page=3", limit: 25, page: 3, offset: 50},
		{query: "?limit=10&page=4", limit: 10, page: 4, offset: 30},
		{query: "?limit=0", bad: "limit"},
		{query: "?limit=101", bad: "limit"},
		{query: "?limit=-5", bad: "limit"},
		{query: "?limit=abc", bad: "limit"},
		{query: "?limit=2.5", bad: "limit"},
		{query: "?limit=1e2", bad: "limit"},
		{query: "?limit=99999999999999999999", bad: "limit"},
		{query: "?page=0", bad: "page"},
		{query: "?page=-1", bad: "page"},
		{query: "?page=two", bad: "page"},
		{query: "?page=1000001", bad: "page"},
		{query: "?limit=10&page=x", bad: "page"},
		// The page form skips at most MaxOffset rows: deeper pages take a cursor.
		{query: "?limit=100&page=101", limit: 100, page: 101, offset: 10_000},
		{query: "?limit=100&page=102", bad: "cursor"},
		{query: "?page=401", limit: 25, page: 401, offset: 10_000},
		{query: "?page=402", bad: "cursor"},
		{query: "?limit=1&page=10001", limit: 1, page: 10001, offset: 10_000},
		{query: "?limit=1&page=10002", bad: "cursor"},
		{query: "?limit=100&page=1000000", bad: "cursor"},
		{query: "?cursor=" + httpapi.Key{Time: 42, ID: "abc"}.Cursor(), cursor: `{"after_id":"abc","after_time":42,"limit":25}`},
		{query: "?limit=5&cursor=" + httpapi.Key{Time: 1764600000123456789, ID: "a:b-c_d"}.Cursor(), cursor: `{"after_id":"a:b-c_d","after_time":1764600000123456789,"limit":5}`},
		{query: "?cursor=" + httpapi.Key{Time: 42, ID: "abc"}.Cursor() + "&page=2", bad: "either page or cursor"},
		{query: "?cursor=not-base64!", bad: "cursor"},
		{query: "?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("42")), bad: "cursor"},
		{query: "?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("x:abc")), bad: "cursor"},
		{query: "?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("42:")), bad: "cursor"},
		{query: "?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("-1:abc")), bad: "cursor"},
		{query: "?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("42:a\x00b")), bad: "cursor"},
		{query: "?cursor=" + strings.Repeat("A", 300), bad: "cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := s.do(t, http.MethodGet, "/paging"+tt.query, "")
			if tt.bad != "" {
				msgs := errorOf(t, r, http.StatusBadRequest, "invalid_parameters")
				if !strings.Contains(msgs[0], tt.bad) {
					t.Fatalf("message %q does not name %s", msgs[0], tt.bad)
				}
				return
			}
			want := fmt.Sprintf(`{"data":{"limit":%d,"offset":%d,"page":%d}}`, tt.limit, tt.offset, tt.page)
			if tt.cursor != "" {
				want = `{"data":` + tt.cursor + `}`
			}
			if r.status != http.StatusOK || strings.TrimSpace(r.body) != want {
				t.Fatalf("%d %s, want 200 %s", r.status, r.body, want)
			}
		})
	}
}

func TestErrorMapping(t *testing.T) {
	secret := errors.New("pq: connection to 10.1.2.3 failed for user spacecast password hunter2")
	errs := map[string]error{
		"invalid":            httpapi.Invalid("limit must be between %d and %d", 1, 100),
		"unauthorized":       httpapi.ErrUnauthorized,
		"unauthorized-msg":   httpapi.Unauthorized("token revoked"),
		"forbidden":          httpapi.Forbidden("needs video:write"),
		"notfound":           httpapi.NotFound("live stream not found"),
		"conflict":           httpapi.Conflict("space is active"),
		"ratelimited":        httpapi.New(httpapi.ErrRateLimited, "slow down", "retry in 1 s"),
		"precondition":       httpapi.New(httpapi.ErrPrecondition),
		"wrapped":            fmt.Errorf("load space sp1: %w", httpapi.NotFound("space not found")),
		"wrapped-twice":      fmt.Errorf("handler: %w", fmt.Errorf("store: %w", httpapi.Conflict("already exists"))),
		"wrapped-sentinel":   fmt.Errorf("delete: %w", httpapi.ErrConflict),
		"joined":             errors.Join(errors.New("detail"), httpapi.ErrForbidden),
		"unknown":            secret,
		"wrapped-unknown":    fmt.Errorf("store: %w", secret),
		"echo-400":           echo.NewHTTPError(http.StatusBadRequest, "bad thing"),
		"echo-401":           echo.ErrUnauthorized,
		"echo-429":           echo.ErrTooManyRequests,
		"echo-500":           echo.NewHTTPError(http.StatusInternalServerError, "hunter2"),
		"canceled-by-server": context.Canceled, // the client is still there: a real failure
	}
	s := newServer(t, nil, errs)
	tests := []struct {
		name   string
		status int
		typ    string
		msgs   []string // nil: only check there is one
	}{
		{"invalid", 400, "invalid_parameters", []string{"limit must be between 1 and 100"}},
		{"unauthorized", 401, "unauthorized", []string{"missing or invalid credentials"}},
		{"unauthorized-msg", 401, "unauthorized", []string{"token revoked"}},
		{"forbidden", 403, "forbidden", []string{"needs video:write"}},
		{"notfound", 404, "not_found", []string{"live stream not found"}},
		{"conflict", 409, "conflict", []string{"space is active"}},
		{"ratelimited", 429, "rate_limited", []string{"slow down", "retry in 1 s"}},
		{"precondition", 412, "precondition_failed", nil},
		{"wrapped", 404, "not_found", []string{"space not found"}},
		{"wrapped-twice", 409, "conflict", []string{"already exists"}},
		{"wrapped-sentinel", 409, "conflict", nil},
		{"joined", 403, "forbidden", nil},
		{"unknown", 500, "internal", []string{"internal server error"}},
		{"wrapped-unknown", 500, "internal", []string{"internal server error"}},
		{"echo-400", 400, "invalid_parameters", []string{"bad thing"}},
		{"echo-401", 401, "unauthorized", nil},
		{"echo-429", 429, "rate_limited", nil},
		{"echo-500", 500, "internal", []string{"internal server error"}},
		{"canceled-by-server", 500, "internal", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(t, http.MethodGet, "/err/"+tt.name, "")
			msgs := errorOf(t, r, tt.status, tt.typ)
			if tt.msgs != nil && fmt.Sprint(msgs) != fmt.Sprint(tt.msgs) {
				t.Fatalf("messages %q, want %q", msgs, tt.msgs)
			}
			if strings.Contains(r.body, "hunter2") || strings.Contains(r.body, "10.1.2.3") {
				t.Fatalf("internal detail leaked to the client: %s", r.body)
			}
			if r.header.Get(echo.HeaderXRequestID) == "" {
				t.Fatal("error response without a request id")
			}
		})
	}
	// Unknown errors are logged once each, with their detail (server side only).
	if n := strings.Count(s.log.String(), "store: pq: connection"); n != 1 {
		t.Fatalf("wrapped unknown error logged %d times, want once:\n%s", n, s.log.String())
	}
	if strings.Contains(s.log.String(), "live stream not found") {
		t.Fatal("an expected 404 was logged as a failure")
	}
	t.Run("HEAD gets the status without a body", func(t *testing.T) {
		r := s.do(t, http.MethodHead, "/err/notfound", "")
		if r.status != 404 || r.body != "" {
			t.Fatalf("HEAD: %d %q", r.status, r.body)
		}
	})
	t.Run("nil error from a handler that wrote nothing", func(t *testing.T) {
		r := s.do(t, http.MethodGet, "/err/none", "")
		if r.status != http.StatusOK {
			t.Fatalf("status %d", r.status)
		}
	})
}

func TestRouterErrorsUseTheEnvelope(t *testing.T) {
	s := newServer(t, nil, nil)
	errorOf(t, s.do(t, http.MethodGet, "/no/such/route", ""), http.StatusNotFound, "not_found")
	errorOf(t, s.do(t, http.MethodPost, "/no/such/route", "{}"), http.StatusNotFound, "not_found")
	// A known path with the wrong method: the envelope, with a kind from the API's list.
	msgs := errorOf(t, s.do(t, http.MethodDelete, "/paging", ""), http.StatusBadRequest, "invalid_parameters")
	if !strings.Contains(msgs[0], "method") {
		t.Fatalf("405 message %q does not mention the method", msgs[0])
	}
}

func TestPanicBecomes500WithoutLeaking(t *testing.T) {
	s := newServer(t, nil, nil)
	r := s.do(t, http.MethodGet, "/panic", "")
	if msgs := errorOf(t, r, http.StatusInternalServerError, "internal"); msgs[0] != "internal server error" {
		t.Fatalf("messages %q", msgs)
	}
	if strings.Contains(r.body, "hunter2") {
		t.Fatalf("panic value leaked: %s", r.body)
	}
	if !strings.Contains(s.log.String(), "secret panic detail") {
		t.Fatal("panic not logged")
	}
	// The server survives.
	if r := s.do(t, http.MethodGet, "/healthz", ""); r.status != 200 {
		t.Fatalf("after a panic /healthz = %d", r.status)
	}
}

func TestSuccessBodies(t *testing.T) {
	s := newServer(t, nil, nil)
	if r := s.do(t, http.MethodPost, "/empty", ""); r.status != 200 || strings.TrimSpace(r.body) != `{"data":{}}` {
		t.Fatalf("Empty: %d %s", r.status, r.body)
	}
	if r := s.do(t, http.MethodGet, "/html", ""); strings.TrimSpace(r.body) != `{"data":"<a&b>"}` {
		t.Fatalf("Data escaped or indented: %s", r.body)
	}
}

func TestRequestID(t *testing.T) {
	s := newServer(t, nil, nil)
	a := s.do(t, http.MethodGet, "/healthz", "").header.Get(echo.HeaderXRequestID)
	b := s.do(t, http.MethodGet, "/healthz", "").header.Get(echo.HeaderXRequestID)
	if a == "" || a == b {
		t.Fatalf("request ids %q and %q: want distinct, non-empty", a, b)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/healthz", nil)
	req.Header.Set(echo.HeaderXRequestID, "caller-chosen-id")
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get(echo.HeaderXRequestID); got != "caller-chosen-id" {
		t.Fatalf("incoming request id not kept: %q", got)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	var kafkaDown error
	var mu sync.Mutex
	checks := []httpapi.Check{
		{Name: "db", Fn: func(context.Context) error { return nil }},
		{Name: "kafka", Fn: func(context.Context) error { mu.Lock(); defer mu.Unlock(); return kafkaDown }},
	}
	s := newServer(t, checks, nil)
	if r := s.do(t, http.MethodGet, "/healthz", ""); r.status != 200 || strings.TrimSpace(r.body) != `{"status":"ok"}` {
		t.Fatalf("/healthz: %d %s", r.status, r.body)
	}
	type ready struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	get := func() (int, ready) {
		r := s.do(t, http.MethodGet, "/readyz", "")
		var rd ready
		if err := json.Unmarshal([]byte(r.body), &rd); err != nil {
			t.Fatalf("/readyz body %s: %v", r.body, err)
		}
		return r.status, rd
	}
	if code, rd := get(); code != 200 || !rd.Ready || rd.Checks["db"] != "ok" || rd.Checks["kafka"] != "ok" {
		t.Fatalf("/readyz all ok: %d %+v", code, rd)
	}
	mu.Lock()
	kafkaDown = errors.New("dial tcp 127.0.0.1:9092: connection refused")
	mu.Unlock()
	code, rd := get()
	if code != http.StatusServiceUnavailable || rd.Ready || rd.Checks["db"] != "ok" || !strings.Contains(rd.Checks["kafka"], "connection refused") {
		t.Fatalf("/readyz with kafka down: %d %+v", code, rd)
	}
	// Checks get a bounded context.
	s2 := newServer(t, []httpapi.Check{{Name: "slow", Fn: func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("no deadline")
		}
		return nil
	}}}, nil)
	if r := s2.do(t, http.MethodGet, "/readyz", ""); r.status != 200 {
		t.Fatalf("check without a deadline: %s", r.body)
	}
}

func TestMetrics(t *testing.T) {
	s := newServer(t, nil, map[string]error{"x": httpapi.NotFound("x")})
	s.do(t, http.MethodGet, "/paging?limit=5", "")
	s.do(t, http.MethodGet, "/paging?limit=5", "")
	s.do(t, http.MethodGet, "/err/x", "")
	s.do(t, http.MethodGet, "/nowhere", "")
	r := s.do(t, http.MethodGet, "/metrics", "")
	if r.status != 200 {
		t.Fatalf("/metrics: %d", r.status)
	}
	for _, want := range []string{
		`spacecast_http_request_duration_seconds_count{method="GET",route="/paging",status="200"} 2`,
		`spacecast_http_request_duration_seconds_count{method="GET",route="/err/:name",status="404"} 1`,
		`spacecast_http_request_duration_seconds_bucket{method="GET",route="/paging",status="200",le="+Inf"} 2`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Unmatched paths share one label value instead of one series per path.
	if strings.Contains(r.body, `route="/nowhere"`) {
		t.Error("an unmatched path became its own route label")
	}
}

// Two servers on one registry (dev mode wires several services into one process) both count.
func TestSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	var servers []*httptest.Server
	for i := 0; i < 2; i++ {
		e := httpapi.NewServer(httpapi.Options{Registry: reg})
		e.GET(fmt.Sprintf("/s%d", i), func(c echo.Context) error { return httpapi.Empty(c) })
		s := httptest.NewServer(e)
		defer s.Close()
		servers = append(servers, s)
	}
	for i, s := range servers {
		res, err := http.Get(fmt.Sprintf("%s/s%d", s.URL, i))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	res, err := http.Get(servers[0].URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, route := range []string{"/s0", "/s1"} {
		if !strings.Contains(string(b), `route="`+route+`"`) {
			t.Errorf("requests to %s (server %s) not in the shared registry", route, route)
		}
	}
}
