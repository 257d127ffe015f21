// Command spaces-api runs the spaces service alone, configured by SPACECAST_* variables.
package main

import (
	"context"
	"os"

	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/service"
	spacesapi "github.com/spacecast/spacecast/services/spaces-api"
)

func main() {
	var cfg spacesapi.Config
	os.Exit(service.Main("spaces-api", "sqlite:spaces.db", service.Needs{Keys: true},
		func(r *envconfig.Reader) { cfg = spacesapi.LoadConfig(r) },
		func(ctx context.Context, c *service.Clients) (service.Runner, error) {
			return spacesapi.New(ctx, cfg, spacesapi.Deps{Logger: c.Log, DB: c.DB, Publisher: c.Producer, Brokers: c.Base.Brokers, Auth: c.Auth})
		}))
}
