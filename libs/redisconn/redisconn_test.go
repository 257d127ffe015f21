package redisconn_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/redisconn"
	"github.com/spacecast/spacecast/libs/testenv"
)

func TestOpen(t *testing.T) {
	url, prefix := testenv.RedisURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := redisconn.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set(ctx, prefix+"k", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, prefix+"k").Result(); err != nil || v != "v" {
		t.Fatalf("get = %q, %v", v, err)
	}
	c.Del(ctx, prefix+"k")
}

func TestOpenFailures(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"http://127.0.0.1:6379", "redis url"},
		{"127.0.0.1:6379", "redis url"},
		{"redis://127.0.0.1:6379/notadb", "redis url"},
		{"redis://127.0.0.1:1/0", "ping"}, // nothing listens on port 1: Open must not return a dead client
	} {
		t.Run(tt.url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := redisconn.Open(ctx, tt.url)
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}
