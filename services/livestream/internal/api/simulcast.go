package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/ssrf"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// TargetGuard checks a simulcast target's host as written (address literals, refused forms);
// the pusher's dialer checks the resolved addresses at every connection.
type TargetGuard interface {
	CheckLiteral(host string) error
}

var _ TargetGuard = (*ssrf.Guard)(nil)

const (
	maxTargetURL       = 2048
	maxTargetStreamKey = 1024
	maxTargets         = 10
)

type targetRequest struct {
	URL         *string `json:"url"`
	StreamKey   *string `json:"stream_key"`
	Passthrough *string `json:"passthrough"`
}

// readTarget validates one target: url rtmp:// or rtmps:// with a host (refused addresses and
// forms as for webhook URLs) and a valid port, no credentials; stream_key and passthrough
// bounded printable strings. prefix names the field in errors.
func (a *API) readTarget(prefix string, r targetRequest) (store.NewSimulcastTarget, error) {
	var n store.NewSimulcastTarget
	if r.URL == nil || *r.URL == "" {
		return n, httpapi.Invalid("%surl: required (rtmp://host[:port]/app or rtmps://...)", prefix)
	}
	raw := *r.URL
	if len(raw) > maxTargetURL || !utf8.ValidString(raw) {
		return n, httpapi.Invalid("%surl: not a valid URL (at most %d bytes)", prefix, maxTargetURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return n, httpapi.Invalid("%surl: not a valid URL", prefix)
	}
	switch strings.ToLower(u.Scheme) {
	case "rtmp", "rtmps":
	default:
		return n, httpapi.Invalid("%surl: must use rtmp:// or rtmps://, not %q", prefix, u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return n, httpapi.Invalid("%surl: no host", prefix)
	}
	if u.User != nil {
		return n, httpapi.Invalid("%surl: must not contain credentials", prefix)
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if v, err := strconv.Atoi(p); err != nil || v < 1 || v > 65535 {
			return n, httpapi.Invalid("%surl: port %q is not between 1 and 65535", prefix, p)
		}
	}
	if strings.Trim(u.Path, "/") == "" {
		return n, httpapi.Invalid("%surl: no application path (rtmp://host/app)", prefix)
	}
	if a.Guard == nil {
		return n, errors.New("api: no target guard")
	}
	if err := a.Guard.CheckLiteral(u.Hostname()); err != nil {
		return n, httpapi.Invalid("%surl: %v", prefix, err)
	}
	if r.StreamKey != nil && (len(*r.StreamKey) > maxTargetStreamKey || !printable(*r.StreamKey)) {
		return n, httpapi.Invalid("%sstream_key: at most %d printable characters", prefix, maxTargetStreamKey)
	}
	if err := checkSettings(nil, nil, nil, r.Passthrough); err != nil {
		return n, err
	}
	n.URL, n.StreamKey, n.Passthrough = raw, r.StreamKey, r.Passthrough
	if n.StreamKey != nil && *n.StreamKey == "" {
		n.StreamKey = nil
	}
	return n, nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// readTargets reads simulcast_targets of a live stream create (absent or null: none).
func (a *API) readTargets(raw json.RawMessage) ([]store.NewSimulcastTarget, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var rs []targetRequest
	if err := json.Unmarshal(raw, &rs); err != nil {
		return nil, httpapi.Invalid("simulcast_targets: want an array of {url, stream_key, passthrough}")
	}
	if len(rs) > maxTargets {
		return nil, httpapi.Invalid("simulcast_targets: at most %d targets", maxTargets)
	}
	out := make([]store.NewSimulcastTarget, 0, len(rs))
	for i, r := range rs {
		n, err := a.readTarget("simulcast_targets["+strconv.Itoa(i)+"].", r)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func (a *API) createTarget(c echo.Context) error {
	var r targetRequest
	if err := httpapi.Bind(c, &r); err != nil {
		return err
	}
	n, err := a.readTarget("", r)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ls, err := a.Store.Get(ctx, env(c), c.Param("id"))
	if err != nil {
		return mapErr(err)
	}
	if len(ls.SimulcastTargets) >= maxTargets {
		return httpapi.Invalid("a live stream has at most %d simulcast targets", maxTargets)
	}
	t, err := a.Store.CreateSimulcastTarget(ctx, env(c), c.Param("id"), n)
	if err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	return httpapi.Data(c, http.StatusCreated, t.Resource())
}

func (a *API) getTarget(c echo.Context) error {
	t, err := a.Store.GetSimulcastTarget(c.Request().Context(), env(c), c.Param("id"), c.Param("tid"))
	if err != nil {
		return mapErr(err)
	}
	return httpapi.Data(c, http.StatusOK, t.Resource())
}

func (a *API) deleteTarget(c echo.Context) error {
	if err := a.Store.DeleteSimulcastTarget(c.Request().Context(), env(c), c.Param("id"), c.Param("tid")); err != nil {
		return mapErr(err)
	}
	a.Relay.Notify()
	return c.NoContent(http.StatusNoContent)
}
