// Command livestream runs the live-stream service alone (REST API, RTMP ingest, HLS playback),
// configured by SPACECAST_* variables.
package main

import (
	"context"
	"os"

	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/service"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/services/livestream"
)

func main() {
	var cfg livestream.Config
	os.Exit(service.Main("livestream", "sqlite:livestream.db", service.Needs{Redis: true, Keys: true},
		func(r *envconfig.Reader) { cfg = livestream.LoadConfig(r) },
		func(ctx context.Context, c *service.Clients) (service.Runner, error) {
			keys, err := spacejwt.NewHTTPKeySource(c.Base.KeysURL, c.Base.InternalSecret)
			if err != nil {
				return nil, err
			}
			jwtv, err := spacejwt.NewVerifier(keys, spacejwt.Options{Logger: c.Log})
			if err != nil {
				return nil, err
			}
			return livestream.New(ctx, cfg, livestream.Deps{Logger: c.Log, DB: c.DB, Publisher: c.Producer, Auth: c.Auth,
				Redis: c.Redis, JWT: jwtv, Registerer: c.Metrics, Brokers: c.Base.Brokers})
		}))
}
