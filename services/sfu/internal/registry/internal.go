package registry

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

func (r *Registry) internalURLsKey() string { return r.prefix + "{nodes}:internal-urls" }

// SetInternalURL records where other nodes reach node's signaling socket (the relay of
// connections that arrive on a node not hosting their space).
func (r *Registry) SetInternalURL(ctx context.Context, node, url string) error {
	return r.rdb.HSet(ctx, r.internalURLsKey(), node, url).Err()
}

// InternalURL returns the base URL other nodes dial to relay to node ("" if unknown).
func (r *Registry) InternalURL(ctx context.Context, node string) (string, error) {
	s, err := r.rdb.HGet(ctx, r.internalURLsKey(), node).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return s, err
}
