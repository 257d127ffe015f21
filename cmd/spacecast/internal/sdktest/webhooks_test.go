package sdktest

import "testing"

// TestWebhooksSDK runs js/webhooks.mjs: mux.system.webhooks create/retrieve/list (for await
// over pages)/update/delete, a real delivery to a receiver on 127.0.0.1 verified by
// mux.webhooks.unwrap and verifySignature, rotate-secret and the delivery log as
// sub-resources, and the SDK's typed errors.
func TestWebhooksSDK(t *testing.T) {
	d := startDev(t, nil)
	runScript(t, d, "webhooks.mjs", nil)
}
