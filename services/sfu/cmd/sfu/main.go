// Command sfu runs one SFU node alone, configured by SPACECAST_* variables.
package main

import (
	"context"
	"os"

	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/service"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/services/sfu"
)

func main() {
	var cfg sfu.Config
	var spacesURL string
	os.Exit(service.Main("sfu", "", service.Needs{Redis: true, Keys: true, NoDatabase: true},
		func(r *envconfig.Reader) {
			cfg = sfu.LoadConfig(r)
			spacesURL = r.String("SPACECAST_SPACES_URL", "http://127.0.0.1:8080")
		},
		func(ctx context.Context, c *service.Clients) (service.Runner, error) {
			keys, err := spacejwt.NewHTTPKeySource(c.Base.KeysURL, c.Base.InternalSecret)
			if err != nil {
				return nil, err
			}
			verifier, err := spacejwt.NewVerifier(keys, spacejwt.Options{Logger: c.Log, MaxLifetime: cfg.MaxTokenLifetime})
			if err != nil {
				return nil, err
			}
			spaces, err := sfu.NewHTTPSpaceLookup(spacesURL, c.Base.InternalSecret)
			if err != nil {
				return nil, err
			}
			if cfg.InternalURL == "" {
				cfg.InternalURL = sfu.DefaultInternalURL(c.Base.HTTPAddr)
			}
			return sfu.New(ctx, cfg, sfu.Deps{Logger: c.Log, Publisher: c.Producer, Brokers: c.Base.Brokers, Redis: c.Redis,
				JWT: verifier, Spaces: spaces, ActiveSpaces: spaces, Metrics: c.Metrics})
		}))
}
