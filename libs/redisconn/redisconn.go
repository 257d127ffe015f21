// Package redisconn opens a go-redis client from a redis:// URL and checks it answers.
package redisconn

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Open parses url (redis://[user:pass@]host:port/db or rediss://) and pings the server.
func Open(ctx context.Context, url string) (redis.UniversalClient, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	c := redis.NewClient(opt)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis ping %s: %w", opt.Addr, err)
	}
	return c, nil
}
