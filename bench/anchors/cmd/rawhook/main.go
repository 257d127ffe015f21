// Command rawhook prints what a bare net/http client achieves posting signed 1 KB webhook bodies
// to local receivers (package rawhook): the anchor webhooks-bench's burst is compared with.
//
//	go run ./cmd/rawhook -deliveries 30000 -endpoints 10 -per-endpoint 4
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"

	"github.com/spacecast/spacecast/bench/anchors/rawhook"
)

func main() {
	var o rawhook.Options
	flag.IntVar(&o.Endpoints, "endpoints", 10, "receivers")
	flag.IntVar(&o.PerEndpoint, "per-endpoint", 4, "concurrent posts per receiver (the webhooks service's default)")
	flag.IntVar(&o.Deliveries, "deliveries", 30000, "deliveries in all")
	flag.IntVar(&o.BodyBytes, "body-bytes", 1024, "body size")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fmt.Printf("rawhook: %d endpoints x %d concurrent, %d-byte bodies, GOMAXPROCS %d\n", o.Endpoints, o.PerEndpoint, o.BodyBytes, runtime.GOMAXPROCS(0))
	r, err := rawhook.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rawhook:", err)
		os.Exit(1)
	}
	fmt.Println(r)
}
