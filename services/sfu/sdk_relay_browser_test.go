package sfu_test

import (
	"os"
	"strings"
	"testing"

	"github.com/spacecast/spacecast/services/sfu"
)

// TestMuxSpacesSDKTwoNodes runs SDK scenarios (e2e/sdk.mjs) with the tabs behind one gateway
// address alternating between two nodes: the tabs on the node not hosting the space are
// relayed to the one that does.
func TestMuxSpacesSDKTwoNodes(t *testing.T) {
	chromium, node, dir := sdkEnv(t)
	page := sdkPage(t, dir)
	scenarios := []string{"two", "four", "mute", "republish", "custom", "names", "duplicate"}
	if only := os.Getenv("SDK_SCENARIOS"); only != "" {
		scenarios = strings.Split(only, ",")
	}
	for _, sc := range scenarios {
		t.Run(sc, func(t *testing.T) {
			w := newWorld(t)
			noSimulcast := func(c *sfu.Config) { c.Simulcast = false }
			n1, n2 := w.node("n1", withRelaySecret, noSimulcast), w.node("n2", withRelaySecret, noSimulcast)
			gw := newGateway(t, n1, n2)
			runSDK(t, chromium, node, dir, sc, page, gw.base, w)
			if gw.hitsOf(0) == 0 || gw.hitsOf(1) == 0 {
				t.Fatalf("the gateway sent %d and %d connections to n1 and n2: both must be used", gw.hitsOf(0), gw.hitsOf(1))
			}
			relayed := metricValue(t, n1, "spacecast_sfu_relayed_connections_total") + metricValue(t, n2, "spacecast_sfu_relayed_connections_total")
			if relayed == 0 {
				t.Fatal("no connection was relayed")
			}
			t.Logf("gateway: %d connections to n1, %d to n2; %v relayed", gw.hitsOf(0), gw.hitsOf(1), relayed)
		})
	}
}
