package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// RateLimiter admits or refuses one request of an authenticated caller. key names the caller
// (an access token id). It sets the response headers it wants and returns an error wrapping
// ErrRateLimited to refuse.
type RateLimiter interface {
	Limit(c echo.Context, key string) error
}

const limiterKey = "spacecast.ratelimiter"

// RateLimit applies the server's RateLimiter (Options.RateLimiter) to the request of the caller
// key. The auth middleware calls it once the caller is known; without a limiter it does nothing.
func RateLimit(c echo.Context, key string) error {
	if l, ok := c.Get(limiterKey).(RateLimiter); ok {
		return l.Limit(c, key)
	}
	return nil
}

// requestInput refuses path parameters and query values that are not valid UTF-8 or hold
// control characters (they reach SQL, where PostgreSQL refuses NUL and bad UTF-8), bounds the
// time a request body may take to arrive, and makes the rate limiter reachable by RateLimit.
func requestInput(bodyTimeout time.Duration, rl RateLimiter) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			vals := c.ParamValues()
			for i, name := range c.ParamNames() {
				if i < len(vals) && !cleanText(vals[i]) {
					return Invalid("path parameter %q must be valid UTF-8 without control characters", name)
				}
			}
			if c.Request().URL.RawQuery != "" {
				for name, vs := range c.QueryParams() {
					if !cleanText(name) {
						return Invalid("query parameter names must be valid UTF-8 without control characters")
					}
					for _, v := range vs {
						if !cleanText(v) {
							return Invalid("query parameter %q must be valid UTF-8 without control characters", name)
						}
					}
				}
			}
			if r := c.Request(); r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
				// A body that trickles in would hold the handler (and its goroutine and buffers)
				// forever: the connection's read deadline cuts it. Bind lifts the deadline once the
				// body is in, so a slow handler is not cut by it; a handler that never reads the
				// body leaves it in place for the server's discard of the rest.
				_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(bodyTimeout))
			}
			if rl != nil {
				c.Set(limiterKey, rl)
			}
			return next(c)
		}
	}
}

// bodyRead lifts the body deadline set by requestInput: the body is complete.
func bodyRead(c echo.Context) {
	if c.Request().ContentLength != 0 {
		_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Time{})
	}
}

// bodyReadError maps a failed body read to the API error.
func bodyReadError(err error) error {
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge:
		return New(ErrTooLarge, "request body too large")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return New(ErrTimeout, "the request body did not arrive in time")
	}
	return Invalid("could not read request body: %v", err)
}

// isControl reports whether r is a C0 or C1 control character or DEL (U+0000–U+001F,
// U+007F–U+009F).
func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) }

// cleanText reports whether s is valid UTF-8 without control characters.
func cleanText(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= 0x7f {
			return utf8.ValidString(s) && strings.IndexFunc(s, isControl) < 0
		}
	}
	return true
}

// checkControl refuses a JSON object body any of whose strings (keys or values, at any depth)
// holds a control character, naming the field. body is valid JSON already decoded once.
func checkControl(body []byte) error {
	// In valid JSON a control character can only be an escape (backslash) or a raw DEL/C1
	// (0x7f, or 0xc2 0x80..0x9f in UTF-8): most bodies have none of these bytes.
	if bytes.IndexByte(body, '\\') < 0 && bytes.IndexByte(body, 0x7f) < 0 && bytes.IndexByte(body, 0xc2) < 0 {
		return nil
	}
	type frame struct {
		object    bool
		expectKey bool
		key       string
		index     int
	}
	var stack []*frame
	consumed := func() {
		if len(stack) == 0 {
			return
		}
		if top := stack[len(stack)-1]; top.object {
			top.expectKey = true
		} else {
			top.index++
		}
	}
	path := func() string {
		var b strings.Builder
		for i, f := range stack {
			if f.object {
				if i > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		return b.String()
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF; anything else was reported by the strict decode already
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				stack = append(stack, &frame{object: t == '{', expectKey: true})
			default:
				stack = stack[:len(stack)-1]
				consumed()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expectKey {
				if strings.IndexFunc(t, isControl) >= 0 {
					return Invalid("field names must not contain control characters")
				}
				stack[n-1].key, stack[n-1].expectKey = t, false
				continue
			}
			if strings.IndexFunc(t, isControl) >= 0 {
				return Invalid("field %q must not contain control characters", path())
			}
			consumed()
		default:
			consumed()
		}
	}
}
