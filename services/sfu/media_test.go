package sfu_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/sfu/internal/synth"
	"github.com/spacecast/spacecast/services/sfu/spacesclient"
)

// received counts RTP packets per track id (the publisher's tid) on one client.
type received struct {
	mu      sync.Mutex
	packets map[string]int
	mime    map[string]string
	kinds   map[string]string
}

func newReceived() *received {
	return &received{packets: map[string]int{}, mime: map[string]string{}, kinds: map[string]string{}}
}

func (r *received) onTrack(rt *spacesclient.RemoteTrack) {
	key := rt.TID
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
	c    *spacesclient.Client
	pubs map[string]*spacesclient.Publication
}

// tid is the track id of the publication of src.
func (p *publisher) tid(src string) string { return p.pubs[src].TID }

// publish starts synthetic media for each source ("camera:vp8", "camera:h264",
// "screenshare:vp8", "microphone") and publishes it (each call returns once the server
// answered the offer).
func publish(t *testing.T, ctx context.Context, c *spacesclient.Client, specs ...string) *publisher {
	t.Helper()
	p := &publisher{c: c, pubs: map[string]*spacesclient.Publication{}}
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
		}
		kind := "video"
		if codec == "opus" {
			kind = "audio"
			capab.ClockRate, capab.Channels = 48000, 2
		} else {
			capab.ClockRate = 90000
		}
		track, err := webrtc.NewTrackLocalStaticSample(capab, src, spacesclient.NewTrackID())
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
	a := spacesJoin(t, ctx, n.url, w.token("space-1", "publisher", "alice"), spacesclient.Options{OnTrack: recvA.onTrack})
	if got := a.Info(); got.ParticipantID != "alice" || got.ConnectionID == "" || len(got.Participants) != 0 ||
		len(got.SubSfus) != 1 || got.SubSfus[0].SfuID != "n1" {
		t.Fatalf("joined = %+v", got)
	}
	ap := publish(t, ctx, a, "microphone", "camera:vp8")

	// alice's tracks are published once the server receives their media.
	rtc.wait(t, "track.published", map[string]string{"participant_id": "alice"}, 2)
	b := spacesJoin(t, ctx, n.url, w.token("space-1", "", "bob"), spacesclient.Options{OnTrack: recvB.onTrack})
	if ps := b.Info().Participants; len(ps) != 1 || ps[0].ParticipantID != "alice" || ps[0].Role != 1 || len(ps[0].Tracks) != 2 {
		t.Fatalf("bob's joined participants = %+v", ps)
	}
	bp := publish(t, ctx, b, "microphone", "camera:h264", "screenshare:vp8")

	c := spacesJoin(t, ctx, n.url, w.token("space-1", "subscriber", "carol"), spacesclient.Options{OnTrack: recvC.onTrack})
	if got := c.Info().Participants; len(got) != 2 {
		t.Fatalf("carol's joined participants = %+v", got)
	}
	nextEvent(t, a, 10*time.Second, "participant_connected carol (subscriber)", func(m spacesclient.Message) bool {
		return m.ParticipantConnected != nil && m.ParticipantConnected.ParticipantID == "carol" && m.ParticipantConnected.Role == 2
	})

	want := map[*received][]string{
		recvA: {bp.tid("microphone"), bp.tid("camera"), bp.tid("screenshare")},
		recvB: {ap.tid("microphone"), ap.tid("camera")},
		recvC: {ap.tid("microphone"), ap.tid("camera"), bp.tid("microphone"), bp.tid("camera"), bp.tid("screenshare")},
	}
	for r, keys := range want {
		for _, k := range keys {
			testenv.Eventually(t, 15*time.Second, func() bool { return r.count(k) >= 20 }, "20 RTP packets of %s (got %d)", k, r.count(k))
		}
	}
	// Nobody receives its own tracks, and codecs are kept.
	if recvA.count(ap.tid("camera")) != 0 || recvB.count(bp.tid("camera")) != 0 {
		t.Fatal("a publisher received its own track")
	}
	recvC.mu.Lock()
	if recvC.mime[bp.tid("camera")] != webrtc.MimeTypeH264 || recvC.mime[ap.tid("camera")] != webrtc.MimeTypeVP8 ||
		recvC.mime[ap.tid("microphone")] != webrtc.MimeTypeOpus || recvC.kinds[bp.tid("screenshare")] != "video" {
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
	nextEvent(t, c, 10*time.Second, "remove_track of bob's screenshare", func(m spacesclient.Message) bool {
		return m.RemoveTrack != nil && m.RemoveTrack.Track.TID == screen.TID && m.RemoveTrack.ConnectionID == b.Info().ConnectionID
	})
	rtc.wait(t, "track.unpublished", map[string]string{"participant_id": "bob", "track_id": screen.TID, "source": "screenshare"}, 1)

	// Mute reaches the others.
	mic := bp.pubs["microphone"]
	if err := b.Mute(ctx, mic.TID, true); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, c, 10*time.Second, "track_muted of bob's microphone", func(m spacesclient.Message) bool {
		return m.TrackMuted != nil && m.TrackMuted.Track.TID == mic.TID
	})
	// Everyone leaves: participant.left for each.
	for _, cl := range []*spacesclient.Client{a, b, c} {
		cl.Leave()
	}
	for _, pid := range []string{"alice", "bob", "carol"} {
		rtc.wait(t, "participant.left", map[string]string{"space_id": "space-1", "participant_id": pid}, 1)
	}
}

// TestICETCPFallback: a client that cannot use UDP still exchanges media over ICE-TCP.
func TestICETCPFallback(t *testing.T) {
	w := newWorld(t)
	n := w.node("n1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recv := newReceived()
	sub := spacesJoin(t, ctx, n.url, w.token("space-1", "subscriber", "tcp-sub"), spacesclient.Options{TCPOnly: true, OnTrack: recv.onTrack})
	pub := spacesJoin(t, ctx, n.url, w.token("space-1", "publisher", "tcp-pub"), spacesclient.Options{TCPOnly: true})
	p := publish(t, ctx, pub, "camera:vp8")
	key := p.tid("camera")
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
	pc := spacesJoin(t, ctx, n.url, w.token("space-1", "publisher", "pub"), spacesclient.Options{})
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "v",
		spacesclient.NewTrackID())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := pc.Publish(ctx, track, "camera")
	if err != nil {
		t.Fatal(err)
	}
	never := make(chan struct{}) // the encoder ignores PLI here: the test counts them
	go synth.Video(ctx, track, 300_000, 30, 1000, never)
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
	spacesJoin(t, ctx, n.url, w.token("space-1", "subscriber", "sub"), spacesclient.Options{})
	select {
	case <-pub.KeyframeRequests:
	case <-time.After(5 * time.Second):
		t.Fatal("no keyframe request reached the publisher after a subscriber joined")
	}
}
