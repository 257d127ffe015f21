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
	"github.com/spacecast/spacecast/libs/testenv"
	rtcclient "github.com/spacecast/spacecast/services/sfu/client"
	"github.com/spacecast/spacecast/services/sfu/rtcproto"
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

	cases := []struct {
		name, token, code string
	}{
		{"expired", sign(with("exp", now.Add(-time.Hour).Unix()), "key-a"), rtcproto.CodeTokenExpired},
		{"nbf in the future", sign(with("nbf", now.Add(time.Hour).Unix()), "key-a"), rtcproto.CodeTokenNotYetValid},
		{"iat in the future", sign(with("iat", now.Add(time.Hour).Unix()), "key-a"), rtcproto.CodeTokenNotYetValid},
		{"wrong audience", sign(with("aud", "v"), "key-a"), rtcproto.CodeTokenAudience},
		{"no exp", sign(with("exp", nil), "key-a"), rtcproto.CodeTokenMissingExpiry},
		{"space of another environment", sign(with("sub", "space-b"), "key-a"), rtcproto.CodeSpaceNotFound},
		{"space that does not exist", sign(with("sub", "nope"), "key-a"), rtcproto.CodeSpaceNotFound},
		{"unknown kid", sign(base(), "key-zzz"), rtcproto.CodeTokenUnknownKey},
		{"no kid", sign(base(), ""), rtcproto.CodeTokenUnknownKey},
		{"HS256", hs256, rtcproto.CodeTokenAlgorithm},
		{"none", none, rtcproto.CodeTokenAlgorithm},
		{"tampered", tampered, rtcproto.CodeTokenSignature},
		{"garbage", "not-a-jwt", rtcproto.CodeTokenMalformed},
		{"empty", "", rtcproto.CodeTokenMalformed},
		{"bad role", sign(with("role", "admin"), "key-a"), rtcproto.CodeTokenClaims},
		{"participant_id of 129 characters", sign(with("participant_id", strings.Repeat("p", 129)), "key-a"), rtcproto.CodeTokenClaims},
		{"participant_id with a control character", sign(with("participant_id", "eve\x1b[2J"), "key-a"), rtcproto.CodeTokenClaims},
		{"valid for 31 days", sign(with("exp", now.Add(31*24*time.Hour).Unix()), "key-a"), rtcproto.CodeTokenLifetime},
		{"no iat, valid for a year", func() string {
			c := with("iat", nil)
			c["exp"] = now.Add(365 * 24 * time.Hour).Unix()
			return sign(c, "key-a")
		}(),
			rtcproto.CodeTokenLifetime},
	}
	// A connected participant is unaffected by everyone else's refusals.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ok, err := rtcclient.Join(ctx, n.url, valid, rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	defer ok.Close()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := rtcclient.Join(ctx, n.url, tc.token, rtcclient.WithLoopbackOnly())
			if err == nil {
				c.Close()
				t.Fatalf("joined with a bad token")
			}
			if got := serverCode(err); got != tc.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tc.code)
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

// rawConn is a WebSocket speaking the protocol by hand.
func rawConn(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// expectError reads until an error message and the close.
func expectError(t *testing.T, c *websocket.Conn, code string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("closed without error %s: %v", code, err)
		}
		var e rtcproto.Error
		_ = json.Unmarshal(b, &e)
		if e.Type != rtcproto.TypeError {
			continue
		}
		if e.Code != code {
			t.Fatalf("error code %q (%s), want %q", e.Code, e.Message, code)
		}
		_, _, err = c.Read(ctx)
		if websocket.CloseStatus(err) != 4000 {
			t.Fatalf("after the error: %v, want close 4000", err)
		}
		return
	}
}

func TestBadSignalingClosesOnlyThatConnection(t *testing.T) {
	w := newWorld(t)
	n := w.node("n1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bystander, err := rtcclient.Join(ctx, n.url, w.token("space-1", "publisher", "bystander"), rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer bystander.Close()
	join := func(c *websocket.Conn, role string) {
		b, _ := json.Marshal(rtcproto.Join{Type: "join", Token: w.token("space-1", role, "")})
		if err := c.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
		_, msg, err := c.Read(ctx)
		if err != nil || !strings.Contains(string(msg), `"joined"`) {
			t.Fatalf("join: %s %v", msg, err)
		}
	}
	// A recvonly-free offer from pion with a send track, built by a publisher-capable client.
	sendOffer := offerWithSendTrack(t)
	cases := []struct {
		name   string
		joined string // "", "publisher" or "subscriber"
		msg    string
		code   string
	}{
		{"not json", "", `{{{`, rtcproto.CodeBadMessage},
		{"no type", "", `{"token":"x"}`, rtcproto.CodeBadMessage},
		{"unknown type", "publisher", `{"type":"dance"}`, rtcproto.CodeBadMessage},
		{"unknown field", "", `{"type":"join","token":"x","extra":1}`, rtcproto.CodeBadMessage},
		{"wrong field type", "", `{"type":"join","token":5}`, rtcproto.CodeBadMessage},
		{"offer before join", "", `{"type":"offer","sdp":"v=0"}`, rtcproto.CodeUnexpectedMessage},
		{"second join", "publisher", `{"type":"join","token":"x"}`, rtcproto.CodeUnexpectedMessage},
		{"answer without offer", "publisher", `{"type":"answer","sdp":"v=0\r\n"}`, rtcproto.CodeUnexpectedMessage},
		{"candidate before offer", "publisher", `{"type":"candidate","target":"publisher","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}}`, rtcproto.CodeUnexpectedMessage},
		{"bad candidate target", "publisher", `{"type":"candidate","target":"x","candidate":{"candidate":"c"}}`, rtcproto.CodeBadMessage},
		{"garbage sdp", "publisher", `{"type":"offer","sdp":"hello"}`, rtcproto.CodeNegotiation},
		{"bad source", "publisher", `{"type":"offer","sdp":"v=0","sources":[{"mid":"0","source":"tv"}]}`, rtcproto.CodeBadMessage},
		{"mute unknown track", "publisher", `{"type":"mute","track_id":"nope","muted":true}`, rtcproto.CodeUnexpectedMessage},
		{"subscriber offers a send track", "subscriber", sendOffer, rtcproto.CodePublishNotAllowed},
		{"binary frame", "", "", rtcproto.CodeBadMessage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawConn(t, n.url)
			if tc.joined != "" {
				join(c, tc.joined)
			}
			typ := websocket.MessageText
			if tc.msg == "" {
				typ = websocket.MessageBinary
			}
			if err := c.Write(ctx, typ, []byte(tc.msg+" ")); err != nil {
				t.Fatal(err)
			}
			expectError(t, c, tc.code)
		})
	}
	select {
	case <-bystander.Done():
		t.Fatalf("bystander closed: %v", bystander.Err())
	default:
	}
}

func offerWithSendTrack(t *testing.T) string {
	t.Helper()
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\n" +
		"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 " + strings.Repeat("AB:", 31) + "AB\r\n" +
		"a=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\n"
	b, _ := json.Marshal(rtcproto.SDP{Type: "offer", SDP: sdp})
	return string(b)
}

func TestDuplicateParticipantRefused(t *testing.T) {
	w := newWorld(t)
	n1 := w.node("n1")
	n2 := w.node("n2")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	first, err := rtcclient.Join(ctx, n1.url, w.token("space-1", "publisher", "dup"), rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatal(err)
	}
	_, err = rtcclient.Join(ctx, n1.url, w.token("space-1", "publisher", "dup"), rtcclient.WithLoopbackOnly())
	if serverCode(err) != rtcproto.CodeDuplicate {
		t.Fatalf("second join: %v, want %s", err, rtcproto.CodeDuplicate)
	}
	// Also when it reaches another node.
	_, err = rtcclient.Join(ctx, n2.url, w.token("space-1", "publisher", "dup"), rtcclient.WithLoopbackOnly())
	if serverCode(err) != rtcproto.CodeDuplicate {
		t.Fatalf("join on the other node: %v, want %s", err, rtcproto.CodeDuplicate)
	}
	// After leaving, the id is free again.
	first.Leave()
	again, err := rtcclient.Join(ctx, n1.url, w.token("space-1", "publisher", "dup"), rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatalf("rejoin after leave: %v", err)
	}
	again.Close()

	// Without participant_id a token can be reused; each connection gets fresh ids.
	tok := w.token("space-1", "publisher", "")
	x, err := rtcclient.Join(ctx, n1.url, tok, rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	y, err := rtcclient.Join(ctx, n1.url, tok, rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if x.Info().ParticipantID == y.Info().ParticipantID || x.Info().ConnectionID == y.Info().ConnectionID {
		t.Fatalf("reused token: %+v / %+v", x.Info(), y.Info())
	}

	// Racing on two SFU instances sharing Redis (fresh space, no host yet): exactly one wins.
	for round := range 5 {
		pid := "racer-" + string(rune('a'+round))
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, dups := 0, 0
		var winners []*rtcclient.Client
		for i := range 8 {
			url := n1.url
			if i%2 == 1 {
				url = n2.url
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := rtcclient.Join(ctx, url, w.token("space-2", "publisher", pid), rtcclient.WithLoopbackOnly())
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
					winners = append(winners, c)
				case serverCode(err) == rtcproto.CodeDuplicate:
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

func TestSpaceOnAnotherNodeRedirects(t *testing.T) {
	w := newWorld(t)
	n1 := w.node("n1")
	n2 := w.node("n2")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := rtcclient.Join(ctx, n1.url, w.token("space-1", "publisher", "a"), rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, err = rtcclient.Join(ctx, n2.url, w.token("space-1", "publisher", "b"), rtcclient.WithLoopbackOnly())
	var se *rtcclient.ServerError
	if !asServerError(err, &se) || se.Code != rtcproto.CodeWrongNode || se.NodeID != "n1" || se.NodeURL != n1.url {
		t.Fatalf("join on n2: %v %+v, want wrong_node to n1 (%s)", err, se, n1.url)
	}
	b, err := rtcclient.Join(ctx, n2.url, w.token("space-1", "publisher", "b"), rtcclient.WithLoopbackOnly(), rtcclient.WithFollowRedirect())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Info().NodeID != "n1" || len(b.Info().Participants) != 1 {
		t.Fatalf("redirected join: %+v", b.Info())
	}
}

func asServerError(err error, se **rtcclient.ServerError) bool {
	e, ok := err.(*rtcclient.ServerError)
	if ok {
		*se = e
	}
	return ok
}

func TestDeletedSpaceDisconnectsItsParticipants(t *testing.T) {
	w := newWorld(t)
	n := w.node("n1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var in []*rtcclient.Client
	for _, pid := range []string{"p1", "p2"} {
		c, err := rtcclient.Join(ctx, n.url, w.token("space-1", "publisher", pid), rtcclient.WithLoopbackOnly())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		in = append(in, c)
	}
	other, err := rtcclient.Join(ctx, n.url, w.token("space-2", "publisher", "p3"), rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

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
			if serverCode(c.Err()) != rtcproto.CodeSpaceDeleted {
				t.Fatalf("closed with %v, want %s", c.Err(), rtcproto.CodeSpaceDeleted)
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
	_, err = rtcclient.Join(ctx, n.url, w.token("space-1", "publisher", "late"), rtcclient.WithLoopbackOnly())
	if serverCode(err) != rtcproto.CodeSpaceDeleted {
		t.Fatalf("join after delete: %v, want %s", err, rtcproto.CodeSpaceDeleted)
	}
}

func TestDeadNodeParticipantsAreCleanedUp(t *testing.T) {
	w := newWorld(t)
	rtc := w.watchRTC()
	n1 := w.node("n1")
	n2 := w.node("n2")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := rtcclient.Join(ctx, n1.url, w.token("space-1", "publisher", "victim"), rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
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
	b, err := rtcclient.Join(ctx, n2.url, w.token("space-1", "publisher", "victim"), rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatalf("rejoin on n2: %v", err)
	}
	defer b.Close()
	if b.Info().NodeID != "n2" {
		t.Fatalf("rejoined on %s", b.Info().NodeID)
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
	victim, err := rtcclient.Join(ctx, n.url, w.token("space-1", "publisher", "victim"), rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	other, err := rtcclient.Join(ctx, n.url, w.tokenWith("key-a2", "space-1", "publisher", "other"), rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	w.keys.remove("key-a")
	deleted := time.Now()
	select {
	case <-victim.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("participant of a deleted signing key still connected after 15 s")
	}
	took := time.Since(deleted)
	if code := serverCode(victim.Err()); code != rtcproto.CodeTokenKeyDeleted {
		t.Fatalf("closed with %v, want %s", victim.Err(), rtcproto.CodeTokenKeyDeleted)
	}
	t.Logf("disconnected %v after the key was deleted", took.Round(time.Millisecond))
	rtc.wait(t, "participant.left", map[string]string{"participant_id": "victim"}, 1)
	if err := other.Ping(ctx); err != nil {
		t.Fatalf("the other key's participant was disconnected: %v", err)
	}
	// The deleted key admits nobody any more.
	if _, err := rtcclient.Join(ctx, n.url, w.token("space-1", "publisher", "again"), rtcclient.WithLoopbackOnly()); serverCode(err) != rtcproto.CodeTokenUnknownKey {
		t.Fatalf("join with the deleted key: %v", err)
	}
}
