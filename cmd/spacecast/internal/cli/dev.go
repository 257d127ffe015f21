package cli

import (
	"os"
	"runtime/pprof"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/spacecast/spacecast/cmd/spacecast/internal/dev"
	"github.com/spacecast/spacecast/libs/envconfig"
	"github.com/spacecast/spacecast/libs/service"
)

func newDevCmd() *cobra.Command {
	o := dev.Options{}
	var logLevel, cpuprofile string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run every Spacecast service in one process (embedded Kafka and Redis, SQLite files)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := service.ParseLevel(logLevel); err != nil {
				return err
			}
			o.Logger = service.NewLogger("text", logLevel)
			o.Out = cmd.OutOrStdout()
			o.Env = envconfig.New(os.LookupEnv)
			if cpuprofile != "" {
				f, err := os.Create(cpuprofile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			return dev.Run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data-dir", envOr("SPACECAST_DATA_DIR", ".spacecast"), "where SQLite files, Kafka data and recordings live (env SPACECAST_DATA_DIR)")
	f.StringVar(&o.HTTPAddr, "http-addr", envOr("SPACECAST_HTTP_ADDR", "127.0.0.1:8080"), "HTTP listen address for every service's routes (env SPACECAST_HTTP_ADDR)")
	f.StringVar(&o.KafkaAddr, "kafka-addr", envOr("SPACECAST_KAFKA_ADDR", "127.0.0.1:9092"), "embedded Kafka listen address (env SPACECAST_KAFKA_ADDR)")
	f.IntVar(&o.SFUUDPPort, "sfu-udp-port", envInt("SPACECAST_SFU_UDP_PORT", 7882), "SFU ICE UDP port, one for all WebRTC traffic (0 = any free port; env SPACECAST_SFU_UDP_PORT)")
	f.IntVar(&o.SFUTCPPort, "sfu-tcp-port", envInt("SPACECAST_SFU_TCP_PORT", 7881), "SFU ICE-TCP port (0 = any free port, -1 = off; env SPACECAST_SFU_TCP_PORT)")
	f.StringVar(&o.RTMPSAddr, "rtmps-addr", envOr("SPACECAST_LIVESTREAM_RTMPS_ADDR", "127.0.0.1:1936"), "RTMPS ingest listen address with a self-signed certificate made in the data directory (env SPACECAST_LIVESTREAM_RTMPS_ADDR; empty: no RTMPS)")
	f.StringVar(&o.RTMPAddr, "rtmp-addr", envOr("SPACECAST_RTMP_ADDR", "127.0.0.1:1935"), "RTMP ingest listen address (env SPACECAST_RTMP_ADDR; 0.0.0.0:1935 for encoders on other machines)")
	f.BoolVar(&o.AccessLog, "access-log", envOr("SPACECAST_ACCESS_LOG", "true") == "true", "log every HTTP request (env SPACECAST_ACCESS_LOG)")
	f.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile (go tool pprof) of the whole run to this file")
	f.StringVar(&logLevel, "log-level", envOr("SPACECAST_LOG_LEVEL", "info"), "debug, info, warn or error (env SPACECAST_LOG_LEVEL)")
	return cmd
}

func envInt(k string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return n
	}
	return def
}
