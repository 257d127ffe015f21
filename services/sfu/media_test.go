package sfu_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/libs/testenv"
	rtcclient "github.com/spacecast/spacecast/services/sfu/client"
	"github.com/spacecast/spacecast/services/sfu/internal/synth"
	"github.com/spacecast/spacecast/services/sfu/rtcproto"
)

// received counts RTP packets per (publisher connection, source) on one client.
type received struct {
	mu      sync.Mutex
	packets map[string]int
	mime    map[string]string
	kinds   map[string]string
}

func newReceived() *received {
	return &received{packets: map[string]int{}, mime: map[string]string{}, kinds: map[string]string{}}
}

func (r *received) onTrack(rt *rtcclient.RemoteTrack) {
	key := rt.Info.ConnectionID + "/" + rt.Info.Source
	r.mu.Lock()
	r.mime[key] = rt.Track.Codec().MimeType
	r.kinds[key] = rt.Track.Kind().String()
	r.mu.Unlock()
	go func() {
		for {
			if _, _, err := rt.Track.ReadRTP(); err != nil {
				return
			}
			r.mu.Lock()
			r.packets[key]++
			r.mu.Unlock()
		}
	}()
}

func (r *received) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.packets[key]
}

type publisher struct {
	c    *rtcclient.Client
	pubs map[string]*rtcclient.Publication
}

// publish starts synthetic media for each source ("camera:vp8", "camera:h264",
// "screenshare:vp8", "microphone") and publishes it.
func publish(t *testing.T, ctx context.Context, c *rtcclient.Client, specs ...string) *publisher {
	t.Helper()
	p := &publisher{c: c, pubs: map[string]*rtcclient.Publication{}}
	for _, spec := range specs {
		src, codec := spec, ""
		for i := range spec {
			if spec[i] == ':' {
				src, codec = spec[:i], spec[i+1:]
			}
		}
		if codec == "" {
			codec = "opus"
		}
		mime := map[string]string{"vp8": webrtc.MimeTypeVP8, "h264": webrtc.MimeTypeH264, "opus": webrtc.MimeTypeOpus}[codec]
		capab := webrtc.RTPCodecCapability{MimeType: mime}
		if codec == "h264" {
			capab.SDPFmtpLine = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
			capab.ClockRate = 90000
		}
		kind := "video"
		if codec == "opus" {
			kind = "audio"
			capab.ClockRate, capab.Channels = 48000, 2
		} else {
			capab.ClockRate = 90000
		}
		track, err := webrtc.NewTrackLocalStaticSample(capab, src, "stream-"+src)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := c.Publish(ctx, track, src)
		if err != nil {
			t.Fatalf("publish %s: %v", spec, err)
		}
		mctx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		if kind == "audio" {
			go synth.Audio(mctx, track)
		} else {
			go synth.Video(mctx, track, 500_000, 30, 30, pub.KeyframeRequests)
		}
		if err := c.WaitPublished(ctx, pub); err != nil {
			t.Fatalf("wait published %s: %v", spec, err)
		}
		p.pubs[src] = pub
	}
	return p
}

func TestTwoPublishersOneSubscriberExchangeRTP(t *testing.T) {
	w := newWorld(t)
	rtc := w.watchRTC()
	n := w.node("n1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	recvA, recvB, recvC := newReceived(), newReceived(), newReceived()
	a, err := rtcclient.Join(ctx, n.url, w.token("space-1", "publisher", "alice"), rtcclient.WithLoopbackOnly(), rtcclient.WithOnTrack(recvA.onTrack))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := a.Info(); got.SpaceID != "space-1" || got.ParticipantID != "alice" || got.ConnectionID == "" || got.Role != "publisher" || len(got.Participants) != 0 {
		t.Fatalf("joined = %+v", got)
	}
	publish(t, ctx, a, "microphone", "camera:vp8")

	b, err := rtcclient.Join(ctx, n.url, w.token("space-1", "", "bob"), rtcclient.WithLoopbackOnly(), rtcclient.WithOnTrack(recvB.onTrack))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if ps := b.Info().Participants; len(ps) != 1 || ps[0].ParticipantID != "alice" || len(ps[0].Tracks) != 2 {
		t.Fatalf("bob's joined participants = %+v", ps)
	}
	bp := publish(t, ctx, b, "microphone", "camera:h264", "screenshare:vp8")

	c, err := rtcclient.Join(ctx, n.url, w.token("space-1", "subscriber", "carol"), rtcclient.WithLoopbackOnly(), rtcclient.WithOnTrack(recvC.onTrack))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Info(); got.Role != "subscriber" || len(got.Participants) != 2 {
		t.Fatalf("carol joined = %+v", got)
	}

	aliceConn, bobConn := a.Info().ConnectionID, b.Info().ConnectionID
	want := map[*received][]string{
		recvA: {bobConn + "/microphone", bobConn + "/camera", bobConn + "/screenshare"},
		recvB: {aliceConn + "/microphone", aliceConn + "/camera"},
		recvC: {aliceConn + "/microphone", aliceConn + "/camera", bobConn + "/microphone", bobConn + "/camera", bobConn + "/screenshare"},
	}
	for r, keys := range want {
		for _, k := range keys {
			testenv.Eventually(t, 15*time.Second, func() bool { return r.count(k) >= 20 }, "20 RTP packets of %s (got %d)", k, r.count(k))
		}
	}
	// Nobody receives its own tracks, and codecs are kept.
	if recvA.count(aliceConn+"/camera") != 0 || recvB.count(bobConn+"/camera") != 0 {
		t.Fatal("a publisher received its own track")
	}
	recvC.mu.Lock()
	if recvC.mime[bobConn+"/camera"] != webrtc.MimeTypeH264 || recvC.mime[aliceConn+"/camera"] != webrtc.MimeTypeVP8 ||
		recvC.mime[aliceConn+"/microphone"] != webrtc.MimeTypeOpus || recvC.kinds[bobConn+"/screenshare"] != "video" {
		t.Errorf("codecs at the subscriber: %v kinds %v", recvC.mime, recvC.kinds)
	}
	recvC.mu.Unlock()

	// Events: three joins and five tracks, keyed by space, in env A.
	for _, pid := range []string{"alice", "bob", "carol"} {
		evs := rtc.wait(t, "participant.joined", map[string]string{"space_id": "space-1", "participant_id": pid, "node_id": "n1"}, 1)
		if evs[0]["_environment"] != envA || evs[0]["connection_id"] == "" || evs[0]["joined_at"] == "" || evs[0]["_source"] != "spacecast/sfu" {
			t.Errorf("participant.joined %v", evs[0])
		}
	}
	rtc.wait(t, "track.published", map[string]string{"participant_id": "alice"}, 2)
	rtc.wait(t, "track.published", map[string]string{"participant_id": "bob", "kind": "video", "source": "screenshare"}, 1)
	rtc.wait(t, "track.published", map[string]string{"participant_id": "bob", "kind": "video", "source": "camera"}, 1)
	rtc.wait(t, "track.published", map[string]string{"participant_id": "bob", "kind": "audio", "source": "microphone"}, 1)

	// Tracks go with renegotiation: bob stops his screenshare.
	screen := bp.pubs["screenshare"]
	if err := b.Unpublish(ctx, screen); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, rtcproto.TypeTrackUnpublished, screen.TrackID)
	rtc.wait(t, "track.unpublished", map[string]string{"participant_id": "bob", "track_id": screen.TrackID, "source": "screenshare"}, 1)

	// Mute reaches the others.
	mic := bp.pubs["microphone"]
	if err := b.Mute(ctx, mic.TrackID, true); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, rtcproto.TypeTrackMuted, mic.TrackID)
	// Everyone leaves: participant.left for each.
	for _, cl := range []*rtcclient.Client{a, b, c} {
		cl.Leave()
	}
	for _, pid := range []string{"alice", "bob", "carol"} {
		rtc.wait(t, "participant.left", map[string]string{"space_id": "space-1", "participant_id": pid}, 1)
	}
}

func waitEvent(t *testing.T, c *rtcclient.Client, typ, trackID string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-c.Events():
			if te, ok := ev.(*rtcproto.TrackEvent); ok && te.Type == typ && te.Track.TrackID == trackID {
				return
			}
		case <-deadline:
			t.Fatalf("no %s for track %s", typ, trackID)
		}
	}
}

// TestICETCPFallback: a client that cannot use UDP still exchanges media over ICE-TCP.
func TestICETCPFallback(t *testing.T) {
	w := newWorld(t)
	n := w.node("n1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recv := newReceived()
	sub, err := rtcclient.Join(ctx, n.url, w.token("space-1", "subscriber", "tcp-sub"), rtcclient.WithLoopbackOnly(),
		rtcclient.WithTCPOnly(), rtcclient.WithOnTrack(recv.onTrack))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub, err := rtcclient.Join(ctx, n.url, w.token("space-1", "publisher", "tcp-pub"), rtcclient.WithLoopbackOnly(), rtcclient.WithTCPOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	publish(t, ctx, pub, "camera:vp8")
	key := pub.Info().ConnectionID + "/camera"
	testenv.Eventually(t, 15*time.Second, func() bool { return recv.count(key) >= 20 }, "20 packets over ICE-TCP (got %d)", recv.count(key))
	pair, err := sub.SubscribeConnection().SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local.Protocol != webrtc.ICEProtocolTCP {
		t.Fatalf("selected pair %v (%v), want TCP", pair, err)
	}
}

// TestNewSubscriberGetsAKeyframeRequestToThePublisher: PLI reaches the publisher when
// someone subscribes.
func TestNewSubscriberGetsAKeyframeRequestToThePublisher(t *testing.T) {
	w := newWorld(t)
	n := w.node("n1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := rtcclient.Join(ctx, n.url, w.token("space-1", "publisher", "pub"), rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := pc.Publish(ctx, track, rtcproto.SourceCamera)
	if err != nil {
		t.Fatal(err)
	}
	never := make(chan struct{}) // the encoder ignores PLI here: the test counts them
	go synth.Video(ctx, track, 300_000, 30, 1000, never)
	if err := pc.WaitPublished(ctx, pub); err != nil {
		t.Fatal(err)
	}
	// Drain what publishing itself asked for, then wait for quiet.
	quiet := time.After(time.Second)
drain:
	for {
		select {
		case <-pub.KeyframeRequests:
			quiet = time.After(time.Second)
		case <-quiet:
			break drain
		}
	}
	sub, err := rtcclient.Join(ctx, n.url, w.token("space-1", "subscriber", "sub"), rtcclient.WithLoopbackOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	select {
	case <-pub.KeyframeRequests:
	case <-time.After(5 * time.Second):
		t.Fatal("no keyframe request reached the publisher after a subscriber joined")
	}
}
