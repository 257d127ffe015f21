package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/httpapi"
)

type textReq struct {
	Passthrough *string           `json:"passthrough"`
	Name        string            `json:"name"`
	Policies    []string          `json:"policies"`
	Labels      map[string]string `json:"labels"`
	Settings    *struct {
		Passthrough string `json:"passthrough"`
	} `json:"settings"`
	Raw json.RawMessage `json:"raw"`
}

func newInputServer(t *testing.T, bodyTimeout time.Duration) *testServer {
	t.Helper()
	logs := &syncBuf{}
	e := httpapi.NewServer(httpapi.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), BodyLimit: "2K", BodyTimeout: bodyTimeout})
	e.POST("/text", func(c echo.Context) error {
		var r textReq
		if err := httpapi.Bind(c, &r); err != nil {
			return err
		}
		return httpapi.Data(c, http.StatusCreated, r)
	})
	e.POST("/slow-handler", func(c echo.Context) error {
		var r textReq
		if err := httpapi.Bind(c, &r); err != nil {
			return err
		}
		// The handler works on longer than the body timeout after the body is in: neither its
		// context nor its answer may be cut by the body deadline.
		select {
		case <-time.After(3 * bodyTimeout):
		case <-c.Request().Context().Done():
			return fmt.Errorf("handler context ended: %w", c.Request().Context().Err())
		}
		return httpapi.Data(c, http.StatusCreated, r)
	})
	e.GET("/things/:id", func(c echo.Context) error { return httpapi.Data(c, http.StatusOK, c.Param("id")) })
	e.GET("/things", func(c echo.Context) error { return httpapi.Data(c, http.StatusOK, c.QueryParam("status")) })
	s := httptest.NewServer(e)
	t.Cleanup(s.Close)
	return &testServer{Server: s, log: logs}
}

func TestBindRefusesControlCharacters(t *testing.T) {
	s := newInputServer(t, 10*time.Second)
	tests := []struct {
		name, body string
		field      string // "" = accepted
	}{
		{"plain text", `{"passthrough":"hello, world – ünïcode ✓"}`, ""},
		{"escaped quote and slash are fine", `{"passthrough":"a \"b\" c\/d \\ e"}`, ""},
		{"escaped non-control character", `{"passthrough":"\u00e9\u2028"}`, ""},
		{"NUL", `{"passthrough":"a\u0000b"}`, "passthrough"},
		{"unit separator", `{"passthrough":"\u001f"}`, "passthrough"},
		{"newline escape", `{"name":"a\nb"}`, "name"},
		{"tab escape", `{"name":"a\tb"}`, "name"},
		{"carriage return", `{"name":"\r"}`, "name"},
		{"escaped DEL", `{"name":"\u007f"}`, "name"},
		{"raw DEL", "{\"name\":\"a\x7fb\"}", "name"},
		{"escaped C1 (NEL)", `{"name":"\u0085"}`, "name"},
		{"raw C1 (U+009F)", "{\"name\":\"a\u009fb\"}", "name"},
		{"first character after C1 is fine", `{"name":"\u00a0"}`, ""},
		{"array element", `{"policies":["public","sig\u0000ned"]}`, "policies[1]"},
		{"map value", `{"labels":{"team":"a\u0000"}}`, "labels.team"},
		{"nested struct", `{"name":"ok","settings":{"passthrough":"\u0001"}}`, "settings.passthrough"},
		{"raw JSON field at depth", `{"raw":{"a":[1,{"b":"\u0000"}]}}`, "raw.a[1].b"},
		{"field after a nested object", `{"settings":{"passthrough":"x"},"name":"\u0000"}`, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(t, http.MethodPost, "/text", tt.body)
			if tt.field == "" {
				if r.status != http.StatusCreated {
					t.Fatalf("%d %s, want 201", r.status, r.body)
				}
				return
			}
			msgs := errorOf(t, r, http.StatusBadRequest, "invalid_parameters")
			if want := fmt.Sprintf("field %q must not contain control characters", tt.field); msgs[0] != want {
				t.Fatalf("message %q, want %q", msgs[0], want)
			}
		})
	}
	t.Run("map key", func(t *testing.T) {
		msgs := errorOf(t, s.do(t, http.MethodPost, "/text", `{"labels":{"a\u0000":"x"}}`), http.StatusBadRequest, "invalid_parameters")
		if !strings.Contains(msgs[0], "field names") {
			t.Fatalf("message %q", msgs[0])
		}
	})
}

func TestBindRefusesInvalidUTF8(t *testing.T) {
	s := newInputServer(t, 10*time.Second)
	for _, body := range []string{
		"{\"passthrough\":\"a\xffb\"}",
		"{\"passthrough\":\"\xc3\"}",         // truncated sequence
		"{\"passthrough\":\"\xed\xa0\x80\"}", // UTF-16 surrogate encoded in UTF-8
		"{\"passthrough\":\"\xc0\xaf\"}",     // overlong
	} {
		msgs := errorOf(t, s.do(t, http.MethodPost, "/text", body), http.StatusBadRequest, "invalid_parameters")
		if !strings.Contains(msgs[0], "UTF-8") {
			t.Fatalf("%q: message %q does not mention UTF-8", body, msgs[0])
		}
	}
}

func TestPathAndQueryRefuseControlCharacters(t *testing.T) {
	s := newInputServer(t, 10*time.Second)
	tests := []struct {
		path string
		bad  string // "" = accepted
	}{
		{"/things/abc", ""},
		{"/things/%C3%A9", ""},
		{"/things/a%00b", `path parameter "id"`},
		{"/things/a%1Fb", `path parameter "id"`},
		{"/things/a%7Fb", `path parameter "id"`},
		{"/things/%FF", `path parameter "id"`},
		{"/things?status=active", ""},
		{"/things?status=act%00ive", `query parameter "status"`},
		{"/things?status=%C2%85", `query parameter "status"`},
		{"/things?status=%FE", `query parameter "status"`},
		{"/things?x%00=1", "query parameter names"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := s.do(t, http.MethodGet, tt.path, "")
			if tt.bad == "" {
				if r.status != http.StatusOK {
					t.Fatalf("%d %s", r.status, r.body)
				}
				return
			}
			msgs := errorOf(t, r, http.StatusBadRequest, "invalid_parameters")
			if !strings.Contains(msgs[0], tt.bad) {
				t.Fatalf("message %q does not name %s", msgs[0], tt.bad)
			}
		})
	}
}

// rawRequest writes head and then part of a body over a plain TCP socket and never sends the
// rest; it returns the status line the server answers with.
func rawRequest(t *testing.T, addr, head, partial string) (string, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, head+partial); err != nil {
		t.Fatal(err)
	}
	// Generous bound: today the server waits for the rest of the body forever.
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to a stalled body after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	return strings.TrimSpace(line), time.Since(start)
}

func TestSlowBodyIsCut(t *testing.T) {
	s := newInputServer(t, 500*time.Millisecond)
	addr := strings.TrimPrefix(s.URL, "http://")
	head := "POST /text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
	line, took := rawRequest(t, addr, head, `{"name":"abc`)
	if !strings.Contains(line, " 408 ") {
		t.Fatalf("status line %q, want 408", line)
	}
	t.Logf("stalled body answered %q after %v", line, took.Round(time.Millisecond))

	chunked := "POST /text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
	if line, _ := rawRequest(t, addr, chunked, "5\r\n{\"nam\r\n"); !strings.Contains(line, " 408 ") {
		t.Fatalf("chunked: status line %q, want 408", line)
	}
}

func TestSlowHandlerIsNotCutByTheBodyTimeout(t *testing.T) {
	s := newInputServer(t, 200*time.Millisecond)
	r := s.do(t, http.MethodPost, "/slow-handler", `{"name":"x"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// The same connection serves the next request (keep-alive) with no stale deadline.
	if r := s.do(t, http.MethodPost, "/text", `{"name":"y"}`); r.status != http.StatusCreated {
		t.Fatalf("next request: %d %s", r.status, r.body)
	}
}
