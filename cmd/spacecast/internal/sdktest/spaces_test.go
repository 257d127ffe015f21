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

	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/sfu/spacesclient"
)

// TestSpacesSDK7 drives Video.Spaces, Video.Spaces.Broadcasts, Video.SigningKeys and
// JWT.signSpaceId of @mux/mux-node 7.3.5 against the dev mode, then joins the space with the
// Go client (Mux Spaces protocol) using the tokens the SDK signed: the space goes active (the
// SDK sees it active and cannot delete it) and idle again once everyone left. A token signed
// for longer than the node allows (expiration '31d') is refused as an invalid JWT saying so.
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
	base := "ws://" + strings.TrimPrefix(d.Base, "http://") + "/spaces"
	join := func(tok string) (*spacesclient.Client, error) {
		return spacesclient.Join(ctx, base, tok, spacesclient.Options{LoopbackOnly: true})
	}
	// expiration: '31d' is past the node's longest lifetime (30 days): refused with a reason.
	if c, err := join(toks.TokenLong); err == nil {
		c.Close()
		t.Fatal("a 31-day token was admitted")
	} else if se, ok := err.(*spacesclient.ServerError); !ok || se.Type != 6 || !strings.Contains(se.Message, spacejwt.ErrLifetime.Error()) {
		t.Fatalf("31-day token refused with %v, want type 6 saying %q", err, spacejwt.ErrLifetime)
	}
	// The SDK's defaults (key from MUX_SIGNING_KEY/MUX_PRIVATE_KEY, 7 days, no participant_id):
	// the server generates the participant id.
	c1, err := join(toks.Token)
	if err != nil {
		t.Fatalf("join with JWT.signSpaceId's default token: %v", err)
	}
	defer c1.Close()
	if c1.Info().ParticipantID == "" || len(c1.Info().Participants) != 0 {
		t.Fatalf("joined %+v", c1.Info())
	}
	// params carry participant_id and role as claims.
	c2, err := join(toks.TokenAlice)
	if err != nil {
		t.Fatalf("join with JWT.signSpaceId's token with params: %v", err)
	}
	defer c2.Close()
	if ps := c2.Info().Participants; c2.Info().ParticipantID != "sdk-alice" || len(ps) != 1 || ps[0].ConnectionID != c1.Info().ConnectionID {
		t.Fatalf("joined with params %+v, want sdk-alice next to %s", c2.Info(), c1.Info().ConnectionID)
	}
	for tm := time.After(10 * time.Second); ; {
		var m spacesclient.Message
		select {
		case m = <-c1.Events():
		case <-tm:
			t.Fatal("the first participant never saw sdk-alice connect")
		}
		if p := m.ParticipantConnected; p != nil {
			if p.ParticipantID != "sdk-alice" || p.Role != 2 {
				t.Fatalf("participant_connected %+v, want sdk-alice as a subscriber (role 2)", p)
			}
			break
		}
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
