package cli

import (
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

func newSpacesCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "spaces", Short: "Create, list, get and delete spaces and their broadcasts"}
	var passthrough string
	create := &cobra.Command{
		Use: "create", Short: "Create a space", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{}
			if cmd.Flags().Changed("passthrough") {
				body["passthrough"] = passthrough
			}
			var out map[string]any
			if err := g.client().do(cmd.Context(), http.MethodPost, "/video/v1/spaces", body, &out); err != nil {
				return err
			}
			return printJSON(cmd, out)
		},
	}
	create.Flags().StringVar(&passthrough, "passthrough", "", "arbitrary string stored with the space")
	list := &cobra.Command{Use: "list", Short: "List spaces, newest first", Args: cobra.NoArgs}
	q := listFlags(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		var out []map[string]any
		if err := g.client().do(cmd.Context(), http.MethodGet, "/video/v1/spaces?"+q(), nil, &out); err != nil {
			return err
		}
		return printJSON(cmd, out)
	}
	get := &cobra.Command{
		Use: "get SPACE_ID", Short: "Show a space", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out map[string]any
			if err := g.client().do(cmd.Context(), http.MethodGet, "/video/v1/spaces/"+url.PathEscape(args[0]), nil, &out); err != nil {
				return err
			}
			return printJSON(cmd, out)
		},
	}
	del := &cobra.Command{
		Use: "delete SPACE_ID", Short: "Delete an idle space", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().do(cmd.Context(), http.MethodDelete, "/video/v1/spaces/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			cmd.Println("deleted", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, get, del, newBroadcastsCmd(g))
	return cmd
}
