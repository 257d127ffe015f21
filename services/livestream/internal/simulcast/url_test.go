package simulcast

import (
	"context"
	"errors"
	"testing"

	"github.com/spacecast/spacecast/libs/ssrf"
)

func TestParseURL(t *testing.T) {
	open, err := ssrf.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	loop, err := ssrf.New([]string{"127.0.0.0/8"}) // what SPACECAST_WEBHOOKS_ALLOW_NETWORKS does in tests
	if err != nil {
		t.Fatal(err)
	}
	long := "rtmp://8.8.8.8/app/" + string(make([]byte, MaxURLLength))
	for _, tc := range []struct {
		name, url, key string
		guard          *ssrf.Guard
		want           string
		err            error
	}{
		{"rtmp with key", "rtmp://8.8.8.8/live2", "abc-123", open, "rtmp://8.8.8.8/live2/abc-123", nil},
		{"rtmps with port and key in path", "rtmps://8.8.8.8:443/app/key", "", open, "rtmps://8.8.8.8:443/app/key", nil},
		{"loopback allowed by setting", "rtmp://127.0.0.1:21100/app", "k", loop, "rtmp://127.0.0.1:21100/app/k", nil},
		{"http scheme", "http://8.8.8.8/app", "k", open, "", ErrBadURL},
		{"srt scheme", "srt://8.8.8.8:9000", "", open, "", ErrBadURL},
		{"no scheme", "8.8.8.8/app", "", open, "", ErrBadURL},
		{"missing host", "rtmp:///app/key", "", open, "", ErrBadURL},
		{"opaque", "rtmp:app", "", open, "", ErrBadURL},
		{"credentials", "rtmp://u:p@8.8.8.8/app", "", open, "", ErrBadURL},
		{"port zero", "rtmp://8.8.8.8:0/app", "", open, "", ErrBadURL},
		{"port too big", "rtmp://8.8.8.8:70000/app", "", open, "", ErrBadURL},
		{"empty port", "rtmp://8.8.8.8:/app", "", open, "", ErrBadURL},
		{"no app", "rtmp://8.8.8.8", "k", open, "", ErrBadURL},
		{"fragment", "rtmp://8.8.8.8/app#x", "", open, "", ErrBadURL},
		{"key with slash", "rtmp://8.8.8.8/app", "a/b", open, "", ErrBadURL},
		{"key with space", "rtmp://8.8.8.8/app", "a b", open, "", ErrBadURL},
		{"too long", long, "", open, "", ErrBadURL},
		{"loopback without setting", "rtmp://127.0.0.1/app", "k", open, "", ssrf.ErrRefused},
		{"private", "rtmp://10.1.2.3/app", "k", open, "", ssrf.ErrRefused},
		{"metadata", "rtmps://169.254.169.254/app", "k", open, "", ssrf.ErrRefused},
		{"localhost name", "rtmp://localhost/app", "k", open, "", ssrf.ErrRefused},
		{"numeric host form", "rtmp://2130706433/app", "k", open, "", ssrf.ErrBadURL},
		{"private even with loopback allowed", "rtmp://192.168.1.1/app", "k", loop, "", ssrf.ErrRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseURL(context.Background(), tc.guard, tc.url, tc.key)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParseURL(%q, %q) = %v, %v; want %v", tc.url, tc.key, u, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q, %q): %v", tc.url, tc.key, err)
			}
			if u.String() != tc.want {
				t.Errorf("ParseURL(%q, %q) = %s, want %s", tc.url, tc.key, u, tc.want)
			}
		})
	}
}
