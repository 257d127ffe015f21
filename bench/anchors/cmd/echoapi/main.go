// Command echoapi serves the REST anchor (package echoapi) until stdin closes or SIGINT. It
// prints "HTTP <addr>" once it listens, for the process that started it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"

	"github.com/spacecast/spacecast/bench/anchors/echoapi"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	db := flag.String("db", "", "SQLite file (required)")
	id := flag.String("token-id", "", "access token id (required)")
	secret := flag.String("token-secret", "", "access token secret (required)")
	stdinStop := flag.Bool("stdin", false, "stop when stdin closes")
	flag.Parse()
	if err := run(*addr, *db, *id, *secret, *stdinStop); err != nil {
		fmt.Fprintln(os.Stderr, "echoapi:", err)
		os.Exit(1)
	}
}

func run(addr, db, id, secret string, stdinStop bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	s, err := echoapi.New(ctx, echoapi.Config{DBPath: db, TokenID: id, TokenSecret: secret})
	if err != nil {
		return err
	}
	defer s.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.Handler()}
	fmt.Printf("HTTP %s\n", ln.Addr())
	if stdinStop {
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop() }()
	}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}
