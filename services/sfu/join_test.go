package sfu_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/spacejwt"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/sfu/spacesclient"
)

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestBadTokensAreRefusedWithReason(t *testing.T) {
	w := newWorld(t)
	n := w.node("n1")
	now := time.Now()
	sign := func(claims jwt.MapClaims, kid string) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		if kid != "" {
			tk.Header["kid"] = kid
		}
		s, err := tk.SignedString(w.keyA)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "space-1", "aud": "rt", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := base()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	valid := sign(base(), "key-a")
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + b64(map[string]any{"sub": "space-2", "aud": "rt", "exp": now.Add(time.Hour).Unix()}) + "." + parts[2]
	hsHead := b64(map[string]string{"alg": "HS256", "typ": "JWT", "kid": "key-a"})
	hsBody := b64(base())
	mac := hmac.New(sha256.New, []byte("secret"))
	mac.Write([]byte(hsHead + "." + hsBody))
	hs256 := hsHead + "." + hsBody + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	none := b64(map[string]string{"alg": "none", "typ": "JWT", "kid": "key-a"}) + "." + hsBody + "."
	// a token signed by environment B's key for a space of environment A

	// Every refusal is the SDK's "invalid JWT" (type 6) with the reason in the message, and
	// close 4000 so the SDK does not retry.
	cases := []struct {
		name, token, reason string
	}{
		{"expired", sign(with("exp", now.Add(-time.Hour).Unix()), "key-a"), spacejwt.ErrExpired.Error()},
		{"nbf in the future", sign(with("nbf", now.Add(time.Hour).Unix()), "key-a"), spacejwt.ErrNotYetValid.Error()},
		{"iat in the future", sign(with("iat", now.Add(time.Hour).Unix()), "key-a"), "issued in the future"},
		{"wrong audience", sign(with("aud", "v"), "key-a"), spacejwt.ErrAudience.Error()},
		{"no exp", sign(with("exp", nil), "key-a"), spacejwt.ErrMissingExpiry.Error()},
		{"space of another environment", sign(with("sub", "space-b"), "key-a"), "space not found: space-b"},
		{"space that does not exist", sign(with("sub", "nope"), "key-a"), "space not found: nope"},
		{"unknown kid", sign(base(), "key-zzz"), spacejwt.ErrUnknownKey.Error()},
		{"no kid", sign(base(), ""), spacejwt.ErrUnknownKey.Error()},
		{"HS256", hs256, spacejwt.ErrAlgorithm.Error()},
		{"none", none, spacejwt.ErrAlgorithm.Error()},
		{"tampered", tampered, spacejwt.ErrSignature.Error()},
		{"garbage", "not-a-jwt", spacejwt.ErrMalformed.Error()},
		{"empty", "", spacejwt.ErrMalformed.Error()},
		{"bad role", sign(with("role", "admin"), "key-a"), spacejwt.ErrRole.Error()},
		{"participant_id of 129 characters", sign(with("participant_id", strings.Repeat("p", 129)), "key-a"), spacejwt.ErrParticipantID.Error()},
		{"participant_id with a control character", sign(with("participant_id", "eve\x1b[2J"), "key-a"), spacejwt.ErrParticipantID.Error()},
		{"valid for 31 days", sign(with("exp", now.Add(31*24*time.Hour).Unix()), "key-a"), spacejwt.ErrLifetime.Error()},
		{"no iat, valid for a year", func() string {
			c := with("iat", nil)
			c["exp"] = now.Add(365 * 24 * time.Hour).Unix()
			return sign(c, "key-a")
		}(),
			spacejwt.ErrLifetime.Error()},
	}
	// A connected participant is unaffected by everyone else's refusals.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ok, err := tryJoin(ctx, n, valid, spacesclient.Options{})
	if err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	defer ok.Close()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tryJoin(ctx, n, tc.token, spacesclient.Options{})
			if err == nil {
				c.Close()
				t.Fatalf("joined with a bad token")
			}
			se := serverError(err)
			if se.Type != 6 || !strings.Contains(se.Message, tc.reason) || se.CloseCode != 4000 {
				t.Fatalf("refusal %v, want type 6 with %q and close 4000", err, tc.reason)
			}
		})
	}
	if err := ok.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ok.Done():
		t.Fatalf("the valid connection closed: %v", ok.Err())
	case <-time.After(200 * time.Millisecond):
	}
}

// rawConn is a Mux Spaces WebSocket joined with token and spoken by hand; it returns once
// joined arrived.
func rawConn(t *testing.T, n *node, token string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, n.url+"/v1?token="+token+"&sdk_version=web-1.2.0&managed_subscriptions=16", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	c.SetReadLimit(4 << 20)
	_, b, err := c.Read(ctx)
	if err != nil || !strings.HasPrefix(string(b), `{"joined"`) {
		t.Fatalf("joined: %.200s %v", b, err)
	}
	return c
}

// readUntil reads frames until one satisfies pred (true) or the connection closes (false,
// with the close status).
func readUntil(ctx context.Context, c *websocket.Conn, pred func(spacesclient.Message) bool) (bool, websocket.StatusCode) {
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return false, websocket.CloseStatus(err)
		}
		var m spacesclient.Message
		if json.Unmarshal(b, &m) == nil && pred(m) {
			return true, 0
		}
	}
}

// TestBadSignalingAffectsOnlyThatConnection: malformed or refused messages on one Mux
// Spaces socket are ignored, answered with an error, or close that socket (when its media
// connection cannot go on); the other participant of the space notices nothing but the
// joins and leaves.
func TestBadSignalingAffectsOnlyThatConnection(t *testing.T) {
	w := newWorld(t)
	n := w.node("n1")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bystander := spacesJoin(t, ctx, n.url, w.token("space-1", "publisher", "bystander"), spacesclient.Options{})
	const (
		ignored   = iota // the connection goes on: a probe afterwards is answered
		errType5         // error type 5 (the SDK's invalid pending track / publish error), connection goes on
		closed           // the connection is closed with code
		errClosed        // an error (type 4, not fatal), then the close with code; never an answer
	)
	cases := []struct {
		name   string
		role   string
		binary bool
		msg    string
		want   int
		code   websocket.StatusCode
	}{
		{"not json", "publisher", false, `{{{`, ignored, 0},
		{"binary frame", "publisher", true, `{"set_display_name":"x"}`, ignored, 0},
		{"unknown message", "publisher", false, `{"dance":{"steps":3}}`, ignored, 0},
		{"wrong field type", "publisher", false, `{"offer":5}`, ignored, 0},
		{"mute of an unknown track", "publisher", false, `{"mute_track":"nope"}`, ignored, 0},
		// An offer the node cannot answer: the SDK would wait for the answer forever, so the
		// socket closes with 1011 and the SDK reconnects and publishes again.
		{"garbage offer", "publisher", false, `{"offer":"hello"}`, errClosed, 1011},
		{"offer without fingerprint", "publisher", false, offerWithoutFingerprint(), errClosed, 1011},
		{"pending_track without tid", "publisher", false, `{"pending_track":{"type":2,"mid":"0","source":"camera"}}`, errType5, 0},
		{"subscriber offers a send track", "subscriber", false, offerWithSendTrack(), errType5, 0},
		{"garbage sub_answer", "publisher", false, `{"sub_answer":{"sfu_id":"n1","sdp":"hello"}}`, errClosed, 1011},
		{"frame over the 1 MiB limit", "publisher", false, `{"set_display_name":"` + strings.Repeat("x", 1<<20) + `"}`, closed, websocket.StatusMessageTooBig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawConn(t, n, w.token("space-1", tc.role, ""))
			typ := websocket.MessageText
			if tc.binary {
				typ = websocket.MessageBinary
			}
			if err := c.Write(ctx, typ, []byte(tc.msg)); err != nil {
				t.Fatal(err)
			}
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			defer rcancel()
			switch tc.want {
			case errClosed:
				var e *spacesclient.Message
				ok, code := readUntil(rctx, c, func(m spacesclient.Message) bool {
					if m.Error != nil && e == nil {
						e = &m
					}
					if m.Answer != "" {
						t.Errorf("an answer came: %.80q", m.Answer)
					}
					return false
				})
				if ok || code != tc.code {
					t.Fatalf("closed with %d, want %d", code, tc.code)
				}
				if e == nil || e.Error.Type != 4 || e.Error.Fatal {
					t.Fatalf("before the close: error %+v, want a non-fatal type 4 (the SDK only logs it; the close makes it reconnect)", e)
				}
				return
			case closed:
				ok, code := readUntil(rctx, c, func(spacesclient.Message) bool { return false })
				if ok || code != tc.code {
					t.Fatalf("closed with %d, want %d", code, tc.code)
				}
				return
			case errType5:
				ok, code := readUntil(rctx, c, func(m spacesclient.Message) bool { return m.Error != nil })
				if !ok {
					t.Fatalf("closed (%d) without an error message", code)
				}
			}
			// The connection still works: set_display_name is answered.
			probe := `{"request_id":"probe-1","set_display_name":"probe"}`
			if err := c.Write(ctx, websocket.MessageText, []byte(probe)); err != nil {
				t.Fatal(err)
			}
			var gotErr *spacesclient.Message
			ok, code := readUntil(rctx, c, func(m spacesclient.Message) bool {
				if m.Error != nil && tc.want == ignored {
					gotErr = &m
					return true
				}
				return m.ParticipantUpdate != nil && m.RequestID == "probe-1"
			})
			switch {
			case gotErr != nil:
				t.Fatalf("error for an ignored message: %+v", gotErr.Error)
			case !ok:
				t.Fatalf("the connection closed (%d) after the message", code)
			}
		})
	}
	select {
	case <-bystander.Done():
		t.Fatalf("bystander closed: %v", bystander.Err())
	default:
	}
	if err := bystander.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		select {
		case m := <-bystander.Events():
			if m.Error != nil {
				t.Fatalf("the bystander got an error: %+v", m.Error)
			}
		default:
			done = true
		}
	}
}

// offerWithoutFingerprint is valid SDP that no DTLS connection can be made from.
func offerWithoutFingerprint() string {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\n" +
		"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\n"
	b, _ := json.Marshal(map[string]string{"offer": sdp})
	return string(b)
}

// offerWithSendTrack is an offer frame whose m-line sends audio.
func offerWithSendTrack() string {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\n" +
		"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 " + strings.Repeat("AB:", 31) + "AB\r\n" +
		"a=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\n"
	b, _ := json.Marshal(map[string]string{"offer": sdp})
	return string(b)
}

// joinEventually retries a join refused as a duplicate (a leave the server has not
// processed yet) for up to 5 s.
func joinEventually(t *testing.T, ctx context.Context, n *node, token string) *spacesclient.Client {
	t.Helper()
	var c *spacesclient.Client
	var err error
	testenv.Eventually(t, 5*time.Second, func() bool {
		c, err = tryJoin(ctx, n, token, spacesclient.Options{})
		return err == nil || serverError(err).Type != 3
	}, "join still refused as a duplicate")
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDuplicateParticipantRefused(t *testing.T) {
	w := newWorld(t)
	n1 := w.node("n1")
	n2 := w.node("n2")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	isDup := func(err error) bool {
		se := serverError(err)
		return se.Type == 3 && strings.Contains(se.Message, "already connected") && se.CloseCode == 4000
	}

	first := spacesJoin(t, ctx, n1.url, w.token("space-1", "publisher", "dup"), spacesclient.Options{})
	if _, err := tryJoin(ctx, n1, w.token("space-1", "publisher", "dup"), spacesclient.Options{}); !isDup(err) {
		t.Fatalf("second join: %v, want type 3 and close 4000", err)
	}
	// Also when it reaches another node.
	if _, err := tryJoin(ctx, n2, w.token("space-1", "publisher", "dup"), spacesclient.Options{}); !isDup(err) {
		t.Fatalf("join on the other node: %v, want type 3 and close 4000", err)
	}
	// After leaving, the id is free again.
	first.Leave()
	joinEventually(t, ctx, n1, w.token("space-1", "publisher", "dup")).Leave()

	// Without participant_id a token can be reused; each connection gets fresh ids.
	tok := w.token("space-1", "publisher", "")
	x := spacesJoin(t, ctx, n1.url, tok, spacesclient.Options{})
	y := spacesJoin(t, ctx, n1.url, tok, spacesclient.Options{})
	if x.Info().ParticipantID == y.Info().ParticipantID || x.Info().ConnectionID == y.Info().ConnectionID {
		t.Fatalf("reused token: %+v / %+v", x.Info(), y.Info())
	}

	// Racing on two SFU instances sharing Redis (fresh space, no host yet): exactly one wins.
	for round := range 5 {
		pid := "racer-" + string(rune('a'+round))
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, dups := 0, 0
		var winners []*spacesclient.Client
		for i := range 8 {
			nd := n1
			if i%2 == 1 {
				nd = n2
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := tryJoin(ctx, nd, w.token("space-2", "publisher", pid), spacesclient.Options{})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
					winners = append(winners, c)
				case serverError(err).Type == 3:
					dups++
				default:
					t.Errorf("racer: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 || dups != 7 {
			t.Fatalf("round %d: %d joined, %d duplicate; want 1 and 7", round, wins, dups)
		}
		for _, c := range winners {
			c.Leave()
		}
		// The space is free of hosts again before the next round.
		testenv.Eventually(t, 5*time.Second, func() bool {
			return w.rdb.Exists(ctx, w.prefix+"{space:space-2}:node").Val() == 0
		}, "space-2 released")
	}
}

// TestSpaceOnAnotherNodeIsRefused: a space lives on one node; without SPACECAST_INTERNAL_SECRET
// nodes neither relay nor accept relays (relay_test.go covers relaying), and the SDK cannot
// follow a redirect (the page fixes the URL). So a connection that reaches another node is
// refused (type 0, naming the host) and the space's participants see nothing of it. Joining
// through the hosting node works.
func TestSpaceOnAnotherNodeIsRefused(t *testing.T) {
	w := newWorld(t)
	n1 := w.node("n1")
	n2 := w.node("n2")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := spacesJoin(t, ctx, n1.url, w.token("space-1", "publisher", "a"), spacesclient.Options{})
	_, err := tryJoin(ctx, n2, w.token("space-1", "publisher", "b"), spacesclient.Options{})
	if se := serverError(err); se.Type != 0 || !strings.Contains(se.Message, "hosted by node n1") || se.CloseCode != 4000 {
		t.Fatalf("join on n2: %v, want type 0 naming n1 and close 4000", err)
	}
	b := spacesJoin(t, ctx, n1.url, w.token("space-1", "publisher", "b"), spacesclient.Options{})
	if ps := b.Info().Participants; len(ps) != 1 || ps[0].ParticipantID != "a" || b.Info().SubSfus[0].SfuID != "n1" {
		t.Fatalf("join on n1: %+v", b.Info())
	}
	m := nextEvent(t, a, 5*time.Second, "participant_connected", func(m spacesclient.Message) bool { return m.ParticipantConnected != nil })
	if m.ParticipantConnected.ParticipantID != "b" || m.ParticipantConnected.ConnectionID != b.Info().ConnectionID {
		t.Fatalf("a saw %+v, want only b's connection through n1", m.ParticipantConnected)
	}
}

func TestDeletedSpaceDisconnectsItsParticipants(t *testing.T) {
	w := newWorld(t)
	n := w.node("n1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var in []*spacesclient.Client
	for _, pid := range []string{"p1", "p2"} {
		in = append(in, spacesJoin(t, ctx, n.url, w.token("space-1", "publisher", pid), spacesclient.Options{}))
	}
	other := spacesJoin(t, ctx, n.url, w.token("space-2", "publisher", "p3"), spacesclient.Options{})

	// spaces-api publishes space.deleted (after which lookups say not found).
	w.smu.Lock()
	delete(w.spaces, "space-1")
	w.smu.Unlock()
	env, err := events.New("spacecast/spaces-api", "space.deleted", "space-1", envA, map[string]any{"id": "space-1", "status": "idle"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := env.Marshal()
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: events.TopicSpaces, Key: []byte("space-1"), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, c := range in {
		select {
		case <-c.Done():
			if se := serverError(c.Err()); se.Type != 1 || !strings.Contains(se.Message, "deleted") || se.CloseCode != 4000 {
				t.Fatalf("closed with %v, want type 1 (space deleted) and close 4000", c.Err())
			}
		case <-time.After(15 * time.Second):
			t.Fatal("participant of the deleted space still connected")
		}
	}
	select {
	case <-other.Done():
		t.Fatalf("participant of another space disconnected: %v", other.Err())
	default:
	}
	_, err = tryJoin(ctx, n, w.token("space-1", "publisher", "late"), spacesclient.Options{})
	if se := serverError(err); se.Type != 6 || !strings.Contains(se.Message, "the space was deleted") {
		t.Fatalf("join after delete: %v, want type 6 saying the space was deleted", err)
	}
}

func TestDeadNodeParticipantsAreCleanedUp(t *testing.T) {
	w := newWorld(t)
	rtc := w.watchRTC()
	n1 := w.node("n1")
	n2 := w.node("n2")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := spacesJoin(t, ctx, n1.url, w.token("space-1", "publisher", "victim"), spacesclient.Options{})
	publish(t, ctx, a, "microphone")
	rtc.wait(t, "track.published", map[string]string{"participant_id": "victim"}, 1)
	key := w.prefix + "{space:space-1}:participants"
	if w.rdb.HLen(ctx, key).Val() != 1 {
		t.Fatal("participant not in Redis")
	}
	killed := time.Now()
	n1.svc.Halt()
	select {
	case <-a.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("halted node kept the connection")
	}
	left := rtc.wait(t, "participant.left", map[string]string{"participant_id": "victim", "node_id": "n1", "space_id": "space-1"}, 1)
	took := time.Since(killed)
	if left[0]["connection_id"] != a.Info().ConnectionID || left[0]["_environment"] != envA {
		t.Fatalf("participant.left = %v", left[0])
	}
	rtc.wait(t, "track.unpublished", map[string]string{"participant_id": "victim"}, 1)
	if n := w.rdb.HLen(ctx, key).Val(); n != 0 {
		t.Fatalf("%d participants still in Redis", n)
	}
	t.Logf("participant.left %v after the kill (node timeout 1.5 s)", took.Round(time.Millisecond))
	// The space is free: joining through n2 hosts it there now.
	b := spacesJoin(t, ctx, n2.url, w.token("space-1", "publisher", "victim"), spacesclient.Options{})
	if id := b.Info().SubSfus[0].SfuID; id != "n2" {
		t.Fatalf("rejoined on %s", id)
	}
}

// Deleting a signing key disconnects, within 15 s and with a clear reason, the participants
// who joined with a token of that key; participants of the environment's other key stay.
// The node runs with the default key refresh (10 s) and key check (2 s).
func TestDeletedSigningKeyDisconnectsItsParticipants(t *testing.T) {
	w := newWorld(t)
	rtc := w.watchRTC()
	n := w.node("n1") // default key refresh (10 s) and key check (2 s)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	victim := spacesJoin(t, ctx, n.url, w.token("space-1", "publisher", "victim"), spacesclient.Options{})
	other := spacesJoin(t, ctx, n.url, w.tokenWith("key-a2", "space-1", "publisher", "other"), spacesclient.Options{})
	w.keys.remove("key-a")
	deleted := time.Now()
	select {
	case <-victim.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("participant of a deleted signing key still connected after 15 s")
	}
	took := time.Since(deleted)
	if se := serverError(victim.Err()); se.Type != 1 || !strings.Contains(se.Message, "signing key") || se.CloseCode != 4000 {
		t.Fatalf("closed with %v, want type 1 naming the signing key and close 4000", victim.Err())
	}
	t.Logf("disconnected %v after the key was deleted", took.Round(time.Millisecond))
	rtc.wait(t, "participant.left", map[string]string{"participant_id": "victim"}, 1)
	if err := other.Ping(ctx); err != nil {
		t.Fatalf("the other key's participant was disconnected: %v", err)
	}
	// The deleted key admits nobody any more.
	if _, err := tryJoin(ctx, n, w.token("space-1", "publisher", "again"), spacesclient.Options{}); !strings.Contains(serverError(err).Message, spacejwt.ErrUnknownKey.Error()) {
		t.Fatalf("join with the deleted key: %v", err)
	}
}
