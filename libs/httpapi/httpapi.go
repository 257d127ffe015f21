// Package httpapi is Spacecast's HTTP layer on labstack/echo: the API.md envelope, error
// mapping in one place, strict JSON binding, pagination, request ids, a structured access log,
// /healthz, /readyz and /metrics.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness dependency.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Options configure NewServer.
type Options struct {
	Logger    *slog.Logger
	Registry  *prometheus.Registry // nil: a fresh one
	Checks    []Check
	AccessLog bool   // log every request at info level (errors are always logged)
	BodyLimit string // default "1M"; a larger body is refused with 413 payload_too_large
	// BodyTimeout bounds the time a request body may take to arrive, counted from the moment
	// the handler chain starts (the headers are bounded by the http.Server's ReadHeaderTimeout).
	// Default 10 s; a body still arriving then is cut and answered 408 request_timeout.
	BodyTimeout time.Duration
	// RateLimiter, when set, is applied to every authenticated request (see RateLimit).
	RateLimiter RateLimiter
}

// NewRegistry returns a Prometheus registry with the Go runtime and process collectors, for
// /metrics; services register their own collectors on it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// NewServer returns an echo instance with Spacecast's conventions installed.
func NewServer(o Options) *echo.Echo {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := o.Registry
	if reg == nil {
		reg = NewRegistry()
	}
	if o.BodyLimit == "" {
		o.BodyLimit = "1M"
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = 10 * time.Second
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(log)
	e.JSONSerializer = compactJSON{}

	reqs := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "spacecast_http_request_duration_seconds",
		Help:    "HTTP request latency by route, method and status.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
	}, []string{"route", "method", "status"})
	if err := reg.Register(reqs); err != nil {
		// Several servers on one registry (dev mode) share the histogram already registered.
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			log.Error("registering HTTP metrics failed", "err", err)
		} else if prev, ok := are.ExistingCollector.(*prometheus.HistogramVec); ok {
			reqs = prev
		}
	}

	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{}))
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			start := time.Now()
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
				if err != nil {
					c.Error(err)
					err = nil
				}
				status := c.Response().Status
				route := c.Path()
				if route == "" {
					route = "unmatched"
				}
				reqs.WithLabelValues(route, c.Request().Method, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
				if o.AccessLog {
					log.Info("http request", "method", c.Request().Method, "path", c.Request().URL.Path,
						"status", status, "dur_ms", float64(time.Since(start).Microseconds())/1000,
						"request_id", c.Response().Header().Get(echo.HeaderXRequestID), "remote", c.RealIP())
				}
			}()
			return next(c)
		}
	})
	e.Use(middleware.BodyLimit(o.BodyLimit))
	e.Use(requestInput(o.BodyTimeout, o.RateLimiter))

	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		res := map[string]string{}
		ok := true
		for _, ch := range o.Checks {
			if err := ch.Fn(ctx); err != nil {
				res[ch.Name] = err.Error()
				ok = false
			} else {
				res[ch.Name] = "ok"
			}
		}
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		return c.JSON(code, map[string]any{"ready": ok, "checks": res})
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	return e
}

type envelope struct {
	Error envelopeBody `json:"error"`
}
type envelopeBody struct {
	Type     string   `json:"type"`
	Messages []string `json:"messages"`
}

func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var he *echo.HTTPError
		if errors.As(err, &he) {
			err = fromEcho(he)
		}
		if errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil {
			// The client went away; there is nobody to answer and nothing went wrong here.
			log.Debug("request canceled by client", "method", c.Request().Method, "path", c.Request().URL.Path)
			c.Response().WriteHeader(499)
			return
		}
		status, typ, msgs, known := classify(err)
		if !known {
			log.Error("request failed", "err", err, "method", c.Request().Method, "path", c.Request().URL.Path,
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		_ = c.JSON(status, envelope{Error: envelopeBody{Type: typ, Messages: msgs}})
	}
}

func fromEcho(he *echo.HTTPError) error {
	msg := fmt.Sprint(he.Message)
	switch he.Code {
	case http.StatusNotFound:
		return NotFound("no such route")
	case http.StatusMethodNotAllowed:
		return Invalid("method not allowed on this route")
	case http.StatusRequestEntityTooLarge:
		return New(ErrTooLarge, "request body too large")
	case http.StatusUnauthorized:
		return Unauthorized(msg)
	case http.StatusForbidden:
		return Forbidden(msg)
	case http.StatusTooManyRequests:
		return New(ErrRateLimited, msg)
	}
	if he.Code >= 400 && he.Code < 500 {
		return Invalid("%s", msg)
	}
	return fmt.Errorf("echo error %d: %s", he.Code, msg)
}

// Data writes {"data": v} with status.
func Data(c echo.Context, status int, v any) error {
	return c.JSON(status, map[string]any{"data": v})
}

// Empty writes 200 {"data": {}} (action endpoints).
func Empty(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"data": struct{}{}})
}

// Bind decodes the JSON body into v strictly: unknown fields, wrong types, trailing data,
// malformed JSON, invalid UTF-8 and strings holding control characters (U+0000–U+001F,
// U+007F–U+009F, in any field at any depth) are 400 errors naming the problem; a body over the
// limit is 413 and a body that does not arrive within the body timeout is 408. An empty body
// decodes as {}.
func Bind(c echo.Context, v any) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return bodyReadError(err)
	}
	bodyRead(c)
	if !utf8.Valid(body) {
		return Invalid("request body is not valid UTF-8")
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if body[0] != '{' {
		return Invalid("request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// More() would miss a stray '}' or ']' after the object; only a clean end of input will do.
	if _, err := dec.Token(); err != io.EOF {
		return Invalid("request body has data after the JSON object")
	}
	return checkControl(body)
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(body)"
		}
		return Invalid("field %q must be %s, not %s", field, jsonKind(te.Type.Kind().String()), te.Value)
	case errors.As(err, &se):
		return Invalid("malformed JSON at byte %d: %v", se.Offset, err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return Invalid("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Invalid("malformed JSON: unexpected end of body")
	}
	return Invalid("malformed JSON: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return k
}

// compactJSON is echo's JSON serializer without indentation and with HTML escaping off.
type compactJSON struct{}

func (compactJSON) Serialize(c echo.Context, i any, indent string) error {
	enc := json.NewEncoder(c.Response())
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(i)
}

func (compactJSON) Deserialize(c echo.Context, i any) error {
	return json.NewDecoder(c.Request().Body).Decode(i)
}
