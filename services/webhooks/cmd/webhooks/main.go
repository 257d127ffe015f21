// Command webhooks runs the webhooks service alone, configured by SPACECAST_* variables.
package main

import (
	"context"
	"os"

	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/service"
	"github.com/spacecast/spacecast/services/webhooks"
)

func main() {
	var cfg webhooks.Config
	os.Exit(service.Main("webhooks", "sqlite:webhooks.db", service.Needs{Redis: true, Keys: true},
		func(r *envconfig.Reader) { cfg = webhooks.LoadConfig(r) },
		func(ctx context.Context, c *service.Clients) (service.Runner, error) {
			return webhooks.New(ctx, cfg, webhooks.Deps{Logger: c.Log, DB: c.DB, Publisher: c.Producer, Brokers: c.Base.Brokers,
				Redis: c.Redis, Auth: c.Auth, Environments: c.Keys})
		}))
}
