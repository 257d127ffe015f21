package cli

import (
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// newAssetsCmd: the recordings of live streams.
func newAssetsCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "assets", Short: "List, show and delete assets (the recordings of live streams)"}
	list := &cobra.Command{Use: "list", Short: "List assets, newest first", Args: cobra.NoArgs}
	q := listFlags(list)
	var liveStream string
	list.Flags().StringVar(&liveStream, "live-stream", "", "only the recordings of this live stream id")
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		path := "/video/v1/assets?" + q()
		if liveStream != "" {
			path += "&live_stream_id=" + url.QueryEscape(liveStream)
		}
		var out []map[string]any
		if err := g.client().do(cmd.Context(), http.MethodGet, path, nil, &out); err != nil {
			return err
		}
		return printJSON(cmd, out)
	}
	get := &cobra.Command{
		Use: "get ASSET_ID", Short: "Show an asset (status, duration, playback ids, tracks)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return getJSON(cmd, g, "/video/v1/assets/"+url.PathEscape(args[0]))
		},
	}
	del := &cobra.Command{
		Use: "delete ASSET_ID", Short: "Delete an asset and its recording files (409 while it is still recording)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().do(cmd.Context(), http.MethodDelete, "/video/v1/assets/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			cmd.Println("deleted", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, get, del)
	return cmd
}

// newPlaybackIDsCmd: what a playback id points to.
func newPlaybackIDsCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "playback-ids", Short: "Look up playback ids"}
	cmd.AddCommand(&cobra.Command{
		Use: "get PLAYBACK_ID", Short: "Show a playback id's policy and the asset or live stream it plays", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return getJSON(cmd, g, "/video/v1/playback-ids/"+url.PathEscape(args[0]))
		},
	})
	return cmd
}

// getJSON prints the data of GET path.
func getJSON(cmd *cobra.Command, g *globalFlags, path string) error {
	var out map[string]any
	if err := g.client().do(cmd.Context(), http.MethodGet, path, nil, &out); err != nil {
		return err
	}
	return printJSON(cmd, out)
}
