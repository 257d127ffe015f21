// Package dev runs every Spacecast service in one process for development: embedded Kafka
// (real wire protocol, so kcat works), embedded Redis, SQLite files in a data directory, and
// one HTTP port serving every service's routes.
package dev

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/spacecast/spacecast/libs/auth"
	"github.com/spacecast/spacecast/libs/embedded"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/ratelimit"
	"github.com/spacecast/spacecast/libs/redisconn"
	"github.com/spacecast/spacecast/libs/service"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/services/keys"
	"github.com/spacecast/spacecast/services/livestream"
	"github.com/spacecast/spacecast/services/sfu"
	spacesapi "github.com/spacecast/spacecast/services/spaces-api"
	"github.com/spacecast/spacecast/services/webhooks"
)

// Options configure the dev mode.
type Options struct {
	DataDir   string
	HTTPAddr  string
	KafkaAddr string
	// SFUUDPPort and SFUTCPPort are the ICE ports of the SFU (0 = any free port, TCP -1 = off).
	SFUUDPPort int
	SFUTCPPort int
	// RTMPAddr is the RTMP ingest address (default :1935).
	RTMPAddr string
	// RTMPSAddr is the RTMPS ingest address ("": no RTMPS); its certificate is a self-signed
	// one made in DataDir and printed.
	RTMPSAddr string
	AccessLog bool
	Logger    *slog.Logger
	Out       io.Writer // where the start-up banner goes
	// Env is read for SPACECAST_BOOTSTRAP_TOKEN_ID/SECRET.
	Env *envconfig.Reader
}

// component is what every service's wiring package offers the dev mode.
type component interface {
	Register(e *echo.Echo)
	Run(ctx context.Context) error
}

// Run starts everything and blocks until ctx ends.
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	keysCfg := keys.LoadConfig(o.Env)
	rateLimits := ratelimit.LoadConfig(o.Env)
	if err := o.Env.Err(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	// Take the HTTP port first so a busy port fails before anything else starts.
	ln, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", o.HTTPAddr, err)
	}
	defer ln.Close()

	kafka, err := embedded.StartKafka(embedded.KafkaOptions{Addr: o.KafkaAddr, DataDir: filepath.Join(o.DataDir, "kafka")})
	if err != nil {
		return err
	}
	defer kafka.Close()
	brokers := kafka.Brokers()

	prod, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: brokers, Logger: log})
	if err != nil {
		return err
	}
	defer prod.Close()

	openDB := func(name string) (*sqldb.DB, error) {
		return sqldb.Open(ctx, "sqlite:"+filepath.Join(o.DataDir, name+".db"))
	}
	var dbs []*sqldb.DB
	defer func() {
		for _, db := range dbs {
			db.Close()
		}
	}()

	keysDB, err := openDB("keys")
	if err != nil {
		return err
	}
	dbs = append(dbs, keysDB)
	keysSvc, err := keys.New(ctx, keysCfg, keys.Deps{Logger: log, DB: keysDB, Publisher: prod})
	if err != nil {
		return err
	}
	boot, err := keysSvc.Bootstrap(ctx)
	if err != nil {
		return err
	}
	authn, err := auth.NewVerifier(keysSvc, auth.VerifierOptions{Logger: log})
	if err != nil {
		return err
	}

	spacesDB, err := openDB("spaces")
	if err != nil {
		return err
	}
	dbs = append(dbs, spacesDB)
	spacesSvc, err := spacesapi.New(ctx, spacesapi.Config{ConsumerGroup: "spaces-api"},
		spacesapi.Deps{Logger: log, DB: spacesDB, Publisher: prod, Brokers: brokers, Auth: authn})
	if err != nil {
		return err
	}

	redisSrv, err := embedded.StartRedis("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer redisSrv.Close()
	rdb, err := redisconn.Open(ctx, redisSrv.URL())
	if err != nil {
		return err
	}
	defer rdb.Close()

	sfuCfg := sfu.LoadConfig(envconfig.FromMap(nil))
	jwtv, err := spacejwt.NewVerifier(keysSvc, spacejwt.Options{Logger: log, MaxLifetime: sfuCfg.MaxTokenLifetime})
	if err != nil {
		return err
	}
	sfuCfg.NodeID = "dev"
	sfuCfg.UDPPort, sfuCfg.TCPPort = o.SFUUDPPort, o.SFUTCPPort
	sfuCfg.ICEBindIP = "127.0.0.1"
	sfuCfg.PublicURL = "ws://" + publicHost(ln.Addr().String()) + sfu.SpacesPath
	metrics := httpapi.NewRegistry()
	// Broadcasts: the SFU looks the ingest up from this process's livestream with a secret of this run.
	internalSecret := rand.Text()
	_, httpPort, _ := net.SplitHostPort(ln.Addr().String())
	sfuCfg.LivestreamURL, sfuCfg.InternalSecret = "http://127.0.0.1:"+httpPort, internalSecret
	// Dev mode fetches broadcast backgrounds from local servers too (as webhooks deliver to them).
	sfuCfg.BackgroundAllowNetworks = []string{"127.0.0.0/8", "::1/128"}
	sfuSvc, err := sfu.New(ctx, sfuCfg, sfu.Deps{Logger: log, Publisher: prod, Brokers: brokers, Redis: rdb, JWT: jwtv,
		Metrics: metrics,
		Spaces: sfu.SpaceLookupFunc(func(ctx context.Context, id string) (sfu.SpaceInfo, error) {
			sp, err := spacesSvc.LookupSpace(ctx, id)
			if errors.Is(err, spacesapi.ErrSpaceNotFound) {
				return sfu.SpaceInfo{}, sfu.ErrSpaceNotFound
			}
			if err != nil {
				return sfu.SpaceInfo{}, err
			}
			return sfu.SpaceInfo{ID: sp.ID, EnvironmentID: sp.EnvironmentID, Status: sp.Status}, nil
		}),
		ActiveSpaces: sfu.ActiveSpacesFunc(func(ctx context.Context, after string, limit int) ([]sfu.SpaceInfo, error) {
			list, err := spacesSvc.ActiveSpaces(ctx, after, limit)
			if err != nil {
				return nil, err
			}
			out := make([]sfu.SpaceInfo, len(list))
			for i, sp := range list {
				out[i] = sfu.SpaceInfo{ID: sp.ID, EnvironmentID: sp.EnvironmentID, Status: sp.Status}
			}
			return out, nil
		})})
	if err != nil {
		return err
	}

	whDB, err := openDB("webhooks")
	if err != nil {
		return err
	}
	dbs = append(dbs, whDB)
	whCfg := webhooks.LoadConfig(envconfig.FromMap(nil))
	// Dev mode delivers to local receivers (`spacecast webhooks listen`): allow loopback only.
	whCfg.AllowNetworks = []string{"127.0.0.0/8", "::1/128"}
	whSvc, err := webhooks.New(ctx, whCfg, webhooks.Deps{Logger: log, DB: whDB, Publisher: prod, Brokers: brokers, Redis: rdb,
		Auth: authn, Environments: keysSvc})
	if err != nil {
		return err
	}

	lsDB, err := openDB("livestream")
	if err != nil {
		return err
	}
	dbs = append(dbs, lsDB)
	lsCfg := livestream.LoadConfig(envconfig.FromMap(nil))
	lsCfg.RecordingsDir = filepath.Join(o.DataDir, "recordings")
	lsCfg.InternalSecret = internalSecret
	// Dev mode restreams to local receivers too (as webhooks): allow loopback only.
	lsCfg.AllowNetworks = []string{"127.0.0.0/8", "::1/128"}
	if o.RTMPAddr != "" {
		lsCfg.RTMPAddr = o.RTMPAddr
	}
	rtmpsFingerprint := ""
	if o.RTMPSAddr != "" {
		host, _, _ := net.SplitHostPort(o.RTMPSAddr)
		hosts := []string{"localhost", "127.0.0.1", "::1"}
		if host != "" && host != "0.0.0.0" && host != "::" {
			hosts = append(hosts, host)
		}
		cert, key, fp, err := livestream.SelfSignedRTMPS(o.DataDir, hosts)
		if err != nil {
			return fmt.Errorf("dev: RTMPS certificate: %w", err)
		}
		lsCfg.RTMPSAddr, lsCfg.RTMPSCertFile, lsCfg.RTMPSKeyFile, rtmpsFingerprint = o.RTMPSAddr, cert, key, fp
	}
	lsSvc, err := livestream.New(ctx, lsCfg, livestream.Deps{Logger: log, DB: lsDB, Publisher: prod, Auth: authn, Redis: rdb, JWT: jwtv,
		Registerer: metrics, Brokers: brokers})
	if err != nil {
		return err
	}
	comps := []component{keysSvc, spacesSvc, sfuSvc, whSvc, lsSvc}
	checks := []httpapi.Check{
		{Name: "keys-db", Fn: keysSvc.Ping},
		{Name: "spaces-db", Fn: spacesSvc.Ping},
		{Name: "sfu", Fn: sfuSvc.Ping},
		{Name: "webhooks-db", Fn: whSvc.Ping},
		{Name: "livestream-db", Fn: lsSvc.Ping},
		{Name: "redis", Fn: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
	}
	opts := httpapi.Options{Logger: log, AccessLog: o.AccessLog, Checks: checks, Registry: metrics}
	if rateLimits.Enabled() {
		// One process: in-process buckets (the embedded Redis would run a Lua interpreter per request).
		lim, err := ratelimit.NewLocal(rateLimits, ratelimit.Options{Logger: log})
		if err != nil {
			return err
		}
		opts.RateLimiter = lim
	}
	e := httpapi.NewServer(opts)
	for _, c := range comps {
		c.Register(e)
	}

	banner(o.Out, ln.Addr().String(), brokers, o.DataDir, boot)
	fmt.Fprintf(o.Out, "  Spaces demo: http://%s/demo/spaces (SFU ICE on udp/%d, tcp/%d)\n", publicHost(ln.Addr().String()), sfuSvc.UDPPort(), sfuSvc.TCPPort())
	fmt.Fprintf(o.Out, "  RTMP ingest: rtmp://%s/app/{stream_key}\n  HLS:         http://%s/stream/{playback_id}.m3u8\n",
		publicHost(lsSvc.RTMPAddr().String()), publicHost(ln.Addr().String()))
	if a := lsSvc.RTMPSAddr(); a != nil {
		fmt.Fprintf(o.Out, "  RTMPS:       rtmps://%s/app/{stream_key} (self-signed %s, SHA-256 %s)\n",
			publicHost(a.String()), lsCfg.RTMPSCertFile, rtmpsFingerprint)
	}
	fmt.Fprintf(o.Out, "  Images:      http://%s/image/{playback_id}/thumbnail.jpg\n\n", publicHost(ln.Addr().String()))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(comps)+1)
	for _, c := range comps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(ctx); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	err = service.Serve(ctx, ln, e, log)
	cancel()
	wg.Wait()
	close(errc)
	for e := range errc {
		err = errors.Join(err, e)
	}
	return err
}

// publicHost is host:port as a browser on this machine reaches httpAddr.
func publicHost(httpAddr string) string {
	host, port, _ := net.SplitHostPort(httpAddr)
	if host == "" || host == "::" || host == "0.0.0.0" || host == "127.0.0.1" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func banner(w io.Writer, httpAddr string, brokers []string, dataDir string, boot keys.Bootstrapped) {
	fmt.Fprintf(w, "\nSpacecast dev is running.\n  API:        http://%s\n  Kafka:      %v\n  Data:       %s\n", publicHost(httpAddr), brokers, dataDir)
	switch {
	case boot.Created && boot.Secret != "":
		fmt.Fprintf(w, "\n  Admin access token (shown once; keep it):\n    export SPACECAST_TOKEN_ID=%s\n    export SPACECAST_TOKEN_SECRET=%s\n", boot.TokenID, boot.Secret)
	case boot.TokenID != "":
		fmt.Fprintf(w, "\n  Admin access token: %s (secret from SPACECAST_BOOTSTRAP_TOKEN_SECRET)\n", boot.TokenID)
	default:
		fmt.Fprintf(w, "\n  Admin access token: created on the first start and printed then (set SPACECAST_BOOTSTRAP_TOKEN_ID/SECRET to choose one).\n")
	}
	fmt.Fprintln(w)
}
