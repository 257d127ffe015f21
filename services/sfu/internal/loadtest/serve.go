// Package loadtest is the SFU load benchmark: one publisher (synthetic VP8 at a target
// bitrate plus Opus-sized audio, answering keyframe requests like an encoder) and N
// subscribers, all Go clients, against a real SFU node in a child process so that its CPU
// is measured on its own.
package loadtest

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/spacecast/spacecast/libs/embedded"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/kafkabus"
	"github.com/spacecast/spacecast/libs/redisconn"
	"github.com/spacecast/spacecast/libs/service"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/services/sfu"
)

// Environment and key id of the benchmark's signing key.
const (
	benchEnv = "bench-env"
	benchKID = "bench-key"
)

type staticKeys struct{ k spacejwt.PublicKey }

func (s staticKeys) PublicKeys(context.Context) ([]spacejwt.PublicKey, error) {
	return []spacejwt.PublicKey{s.k}, nil
}

// ServeCommand is the "serve" subcommand Run starts as its child: it parses args (-key,
// -simulcast) and runs Serve.
func ServeCommand(ctx context.Context, args []string, out io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	key := fs.String("key", "", "PEM private key whose public half the SFU trusts")
	simulcast := fs.Bool("simulcast", false, "ask camera publishers for RID simulcast layers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pem, err := os.ReadFile(*key)
	if err != nil {
		return err
	}
	return Serve(ctx, pem, *simulcast, out, log)
}

// Serve runs one SFU node with embedded Kafka and Redis, trusting the public key of keyPEM
// and treating every space id as existing; with simulcast the node asks camera publishers
// for RID layers (sfu.Config.Simulcast). It writes "READY <ws url>" to out.
func Serve(ctx context.Context, keyPEM []byte, simulcast bool, out io.Writer, log *slog.Logger) error {
	priv, err := spacejwt.ParsePrivateKey(keyPEM)
	if err != nil {
		return err
	}
	kafka, err := embedded.StartKafka(embedded.KafkaOptions{Addr: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer kafka.Close()
	red, err := embedded.StartRedis("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer red.Close()
	rdb, err := redisconn.Open(ctx, red.URL())
	if err != nil {
		return err
	}
	defer rdb.Close()
	prod, err := kafkabus.NewProducer(kafkabus.ProducerConfig{Brokers: kafka.Brokers(), Logger: log})
	if err != nil {
		return err
	}
	defer prod.Close()
	v, err := spacejwt.NewVerifier(staticKeys{spacejwt.PublicKey{ID: benchKID, EnvironmentID: benchEnv, Key: &priv.PublicKey}}, spacejwt.Options{Logger: log})
	if err != nil {
		return err
	}
	lookup := sfu.SpaceLookupFunc(func(_ context.Context, id string) (sfu.SpaceInfo, error) {
		return sfu.SpaceInfo{ID: id, EnvironmentID: benchEnv, Status: "idle"}, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cfg := sfu.Config{NodeID: "bench", ICEBindIP: "127.0.0.1", UDPPort: 0, TCPPort: -1, RedisPrefix: "bench:", Simulcast: simulcast,
		PublicURL: "ws://" + ln.Addr().String() + strings.TrimSuffix(sfu.SpacesPath, "/v1")}
	svc, err := sfu.New(ctx, cfg, sfu.Deps{Logger: log, Publisher: prod, Brokers: kafka.Brokers(), Redis: rdb, JWT: v, Spaces: lookup})
	if err != nil {
		ln.Close()
		return err
	}
	e := httpapi.NewServer(httpapi.Options{Logger: log})
	svc.Register(e)
	runErr := make(chan error, 1)
	go func() { runErr <- svc.Run(ctx) }()
	fmt.Fprintf(out, "READY %s\n", cfg.PublicURL)
	err = service.Serve(ctx, ln, e, log)
	if rerr := <-runErr; err == nil {
		err = rerr
	}
	return err
}
