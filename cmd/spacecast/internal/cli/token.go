package cli

import (
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/spacecast/spacecast/libs/spacejwt"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Sign JWTs offline with a saved signing key"}
	var keyFile, keyID, space, role, participant string
	var ttl time.Duration
	sp := &cobra.Command{
		Use: "space", Short: "Sign a space JWT (aud rt) that admits a client to a space", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, kid, err := readKey(keyFile, keyID)
			if err != nil {
				return err
			}
			if role != spacejwt.RolePublisher && role != spacejwt.RoleSubscriber {
				return fmt.Errorf("--role must be publisher or subscriber")
			}
			tok, err := spacejwt.Sign(raw, kid, spacejwt.SignClaims{Audience: spacejwt.AudienceRT, Subject: space, Role: role,
				ParticipantID: participant, TTL: ttl})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	sp.Flags().StringVar(&keyFile, "key", "", "private key file saved by `spacecast signing-keys create`")
	sp.Flags().StringVar(&keyID, "key-id", "", "signing key id (default: read from the key file)")
	sp.Flags().StringVar(&space, "space", "", "space id (the token's sub)")
	sp.Flags().StringVar(&role, "role", spacejwt.RolePublisher, "publisher or subscriber")
	sp.Flags().StringVar(&participant, "participant-id", "", "unique participant id (optional)")
	sp.Flags().DurationVar(&ttl, "ttl", time.Hour, "token lifetime")
	_ = sp.MarkFlagRequired("key")
	_ = sp.MarkFlagRequired("space")

	var pid string
	pb := &cobra.Command{
		Use: "playback", Short: "Sign a playback JWT (aud v) for a signed playback id", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, kid, err := readKey(keyFile, keyID)
			if err != nil {
				return err
			}
			tok, err := spacejwt.Sign(raw, kid, spacejwt.SignClaims{Audience: spacejwt.AudiencePlayback, Subject: pid, TTL: ttl})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	pb.Flags().StringVar(&keyFile, "key", "", "private key file saved by `spacecast signing-keys create`")
	pb.Flags().StringVar(&keyID, "key-id", "", "signing key id (default: read from the key file)")
	pb.Flags().StringVar(&pid, "playback-id", "", "playback id (the token's sub)")
	pb.Flags().DurationVar(&ttl, "ttl", time.Hour, "token lifetime")
	_ = pb.MarkFlagRequired("key")
	_ = pb.MarkFlagRequired("playback-id")
	cmd.AddCommand(sp, pb)
	return cmd
}

// readKey reads a private key file saved by `signing-keys create` and its key id (from the
// PEM header unless kid is given).
func readKey(file, kid string) ([]byte, string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, "", err
	}
	if block, _ := pem.Decode(raw); block != nil && kid == "" {
		kid = block.Headers[kidHeader]
	}
	if kid == "" {
		return nil, "", fmt.Errorf("the key file has no %s header: pass --key-id", kidHeader)
	}
	return raw, kid, nil
}
