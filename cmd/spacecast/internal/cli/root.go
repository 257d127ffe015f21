// Package cli is the spacecast command line: the dev mode and API client commands.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Execute runs the command line and returns the exit code.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	if err := root.ExecuteContext(ctx); err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			fmt.Fprintln(os.Stderr, "error:", ae.Error())
			return 2
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

func newRoot() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "spacecast",
		Short:         "Spacecast: self-hosted real-time spaces, live streams and webhooks",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	g.bind(root)
	root.AddCommand(
		newDevCmd(),
		newSpacesCmd(g),
		newLiveStreamsCmd(g),
		newAssetsCmd(g),
		newPlaybackIDsCmd(g),
		newSigningKeysCmd(g),
		newTokenCmd(),
		newEventsCmd(g),
		newBenchCmd(g),
		newWebhooksCmd(g),
	)
	return root
}
