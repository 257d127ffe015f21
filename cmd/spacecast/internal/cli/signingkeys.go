package cli

import (
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"
)

// kidHeader is the PEM header under which the CLI saves a signing key's id.
const kidHeader = "Spacecast-Key-Id"

func newSigningKeysCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "signing-keys", Short: "Create signing keys for space and playback JWTs"}
	var out string
	create := &cobra.Command{
		Use: "create", Short: "Create a signing key and save its private half to a file (it is shown only once)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var k struct {
				ID         string `json:"id"`
				CreatedAt  string `json:"created_at"`
				PrivateKey string `json:"private_key"`
			}
			if err := g.client().do(cmd.Context(), http.MethodPost, "/system/v1/signing-keys", map[string]any{}, &k); err != nil {
				return err
			}
			raw, err := base64.StdEncoding.DecodeString(k.PrivateKey)
			if err != nil {
				return fmt.Errorf("server sent a private key that is not base64: %w", err)
			}
			block, _ := pem.Decode(raw)
			if block == nil {
				return fmt.Errorf("server sent a private key that is not PEM")
			}
			if block.Headers == nil {
				block.Headers = map[string]string{}
			}
			block.Headers[kidHeader] = k.ID
			path := out
			if path == "" {
				path = "signing-key-" + k.ID + ".pem"
			}
			if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
				return err
			}
			return printJSON(cmd, map[string]string{"id": k.ID, "created_at": k.CreatedAt, "private_key_file": path})
		},
	}
	create.Flags().StringVarP(&out, "out", "o", "", "file for the private key (default signing-key-<id>.pem)")
	cmd.AddCommand(create)
	return cmd
}
