package sdktest

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/testenv"
	rtcclient "github.com/spacecast/spacecast/services/sfu/client"
)

// TestSpacesSDK7 drives Video.Spaces, Video.Spaces.Broadcasts, Video.SigningKeys and
// JWT.signSpaceId of @mux/mux-node 7.3.5 against the dev mode, then joins the space with the
// Go client using the tokens the SDK signed: the space goes active (the SDK sees it active and
// cannot delete it) and idle again once everyone left. A token signed for longer than the
// node allows (expiration '31d') is refused with token_lifetime.
func TestSpacesSDK7(t *testing.T) {
	d := startDev(t, nil)
	out := filepath.Join(t.TempDir(), "tokens.json")
	runScript(t, d, "spaces.mjs", map[string]string{"SPACES_PHASE": "api", "SPACES_OUT": out})
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var toks struct {
		SpaceID    string `json:"space_id"`
		Token      string `json:"token"`
		TokenAlice string `json:"token_alice"`
		TokenLong  string `json:"token_long"`
	}
	if err := json.Unmarshal(raw, &toks); err != nil || toks.SpaceID == "" || toks.Token == "" || toks.TokenAlice == "" {
		t.Fatalf("script output %q: %v", raw, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ws := "ws://" + strings.TrimPrefix(d.Base, "http://") + "/rtc/v1/ws"
	// expiration: '31d' is past the node's longest lifetime (30 days): refused with a reason.
	if c, err := rtcclient.Join(ctx, ws, toks.TokenLong, rtcclient.WithLoopbackOnly()); err == nil {
		c.Close()
		t.Fatal("a 31-day token was admitted")
	} else if !strings.Contains(err.Error(), "token_lifetime") {
		t.Fatalf("31-day token refused with %v, want token_lifetime", err)
	}
	// The SDK's defaults (key from MUX_SIGNING_KEY/MUX_PRIVATE_KEY, 7 days, no participant_id):
	// the server generates the participant id.
	c1, err := rtcclient.Join(ctx, ws, toks.Token, rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatalf("join with JWT.signSpaceId's default token: %v", err)
	}
	defer c1.Close()
	if c1.Info().SpaceID != toks.SpaceID || c1.Info().ParticipantID == "" {
		t.Fatalf("joined %+v", c1.Info())
	}
	// params carry participant_id and role as claims.
	c2, err := rtcclient.Join(ctx, ws, toks.TokenAlice, rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatalf("join with JWT.signSpaceId's token with params: %v", err)
	}
	defer c2.Close()
	if c2.Info().ParticipantID != "sdk-alice" || c2.Info().Role != "subscriber" {
		t.Fatalf("joined with params %+v", c2.Info())
	}
	waitSpaceStatus(t, d, toks.SpaceID, "active")
	runScript(t, d, "spaces.mjs", map[string]string{"SPACES_PHASE": "active", "SPACE_ID": toks.SpaceID})

	if err := c1.Leave(); err != nil {
		t.Fatal(err)
	}
	if err := c2.Leave(); err != nil {
		t.Fatal(err)
	}
	waitSpaceStatus(t, d, toks.SpaceID, "idle")
	runScript(t, d, "spaces.mjs", map[string]string{"SPACES_PHASE": "idle", "SPACE_ID": toks.SpaceID})
}

// waitSpaceStatus waits until the REST API shows space id with status.
func waitSpaceStatus(t *testing.T, d devEnv, id, status string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, d.Base+"/video/v1/spaces/"+id, nil)
		req.SetBasicAuth(adminID, adminSecret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var body struct {
			Data struct {
				Status string `json:"status"`
			} `json:"data"`
		}
		return json.NewDecoder(res.Body).Decode(&body) == nil && body.Data.Status == status
	}, "space %s never became %s", id, status)
}
