// Command keys runs the keys service alone, configured by SPACECAST_* environment variables.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/service"
	"github.com/spacecast/spacecast/services/keys"
)

func main() {
	var cfg keys.Config
	os.Exit(service.Main("keys", "sqlite:keys.db", service.Needs{},
		func(r *envconfig.Reader) { cfg = keys.LoadConfig(r) },
		func(ctx context.Context, c *service.Clients) (service.Runner, error) {
			svc, err := keys.New(ctx, cfg, keys.Deps{Logger: c.Log, DB: c.DB, Publisher: c.Producer})
			if err != nil {
				return nil, err
			}
			boot, err := svc.Bootstrap(ctx)
			if err != nil {
				return nil, err
			}
			if boot.Created && boot.Secret != "" {
				fmt.Fprintf(os.Stderr, "Created admin access token (shown once):\n  id:     %s\n  secret: %s\n", boot.TokenID, boot.Secret)
			}
			return svc, nil
		}))
}
