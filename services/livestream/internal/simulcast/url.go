package simulcast

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spacecast/spacecast/libs/ssrf"
)

// MaxURLLength bounds a target URL (and, separately, a stream key).
const MaxURLLength = 2048

// ParseURL validates a simulcast target as given to the API (Mux's url and optional
// stream_key) and returns the URL to publish to: url with the stream key appended as the last
// path segment when one is given. The URL must be rtmp:// or rtmps://, name a host, carry no
// credentials or fragment, have a numeric port in 1..65535 if any, and an app (the first path
// segment). The host is checked by guard like a webhook receiver's: its written form, and every
// address it resolves to now; the pusher's dialer checks the addresses actually dialled again.
func ParseURL(ctx context.Context, guard *ssrf.Guard, raw, streamKey string) (*url.URL, error) {
	if len(raw) > MaxURLLength {
		return nil, fmt.Errorf("%w: longer than %d characters", ErrBadURL, MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: not a valid URL", ErrBadURL)
	}
	switch {
	case u.Scheme != "rtmp" && u.Scheme != "rtmps":
		return nil, fmt.Errorf("%w: must use rtmp:// or rtmps://, not %q", ErrBadURL, u.Scheme)
	case u.Opaque != "" || u.Hostname() == "":
		return nil, fmt.Errorf("%w: no host", ErrBadURL)
	case u.User != nil:
		return nil, fmt.Errorf("%w: must not contain credentials", ErrBadURL)
	case u.Fragment != "" || strings.HasSuffix(raw, "#"):
		return nil, fmt.Errorf("%w: must not contain a fragment", ErrBadURL)
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || p[0] == '0' {
			return nil, fmt.Errorf("%w: port %q is not a number in 1..65535", ErrBadURL, p)
		}
	}
	app, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if app == "" {
		return nil, fmt.Errorf("%w: no application path (rtmp://host/app)", ErrBadURL)
	}
	if len(streamKey) > MaxURLLength {
		return nil, fmt.Errorf("%w: stream_key longer than %d characters", ErrBadURL, MaxURLLength)
	}
	for i := 0; i < len(streamKey); i++ {
		if c := streamKey[i]; c < 0x21 || c > 0x7e || c == '/' {
			return nil, fmt.Errorf("%w: stream_key must be printable ASCII without spaces or '/'", ErrBadURL)
		}
	}
	if err := guard.CheckHost(ctx, u.Hostname()); err != nil {
		return nil, err
	}
	if streamKey != "" {
		u = u.JoinPath(streamKey)
	}
	return u, nil
}
