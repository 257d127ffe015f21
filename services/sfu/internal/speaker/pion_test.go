package speaker

import (
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

func TestLevelFromPacket(t *testing.T) {
	h := &rtp.Header{}
	if _, _, err := LevelFromPacket(h, 1); !errors.Is(err, ErrNoExtension) {
		t.Fatalf("no extension: %v", err)
	}
	if err := h.SetExtension(1, []byte{0x80 | 33}); err != nil {
		t.Fatal(err)
	}
	if l, v, err := LevelFromPacket(h, 1); err != nil || l != 33 || !v {
		t.Fatalf("LevelFromPacket = %d %v %v", l, v, err)
	}
	if _, _, err := LevelFromPacket(h, 2); !errors.Is(err, ErrNoExtension) {
		t.Fatalf("other id: %v", err)
	}
}

func newAudioAPI(t *testing.T) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	if err := RegisterHeaderExtension(m); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	if err := se.SetEphemeralUDPPortRange(18200, 18299); err != nil {
		t.Fatal(err)
	}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// TestSpeakersFromRTP: two pion publishers send Opus-sized packets carrying the audio level
// extension (one loud, one quiet) to a receiver that reads the negotiated extension id from
// its RTPReceiver, parses every packet and feeds a Detector; the loud one is the speaker.
func TestSpeakersFromRTP(t *testing.T) {
	if testing.Short() {
		t.Skip("pion integration test")
	}
	api := newAudioAPI(t)
	type obs struct {
		who   string
		level uint8
		at    time.Time
	}
	levels := make(chan obs, 1024)
	onTrack := func(tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		id, ok := ExtensionID(r.GetParameters())
		if !ok {
			t.Errorf("audio level extension not negotiated for %s", tr.StreamID())
			return
		}
		go func() {
			for {
				pkt, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				level, _, err := LevelFromPacket(&pkt.Header, id)
				if err != nil {
					t.Errorf("%s: %v", tr.StreamID(), err)
					return
				}
				select {
				case levels <- obs{tr.StreamID(), level, time.Now()}:
				default:
				}
			}
		}()
	}
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for _, p := range []struct {
		who   string
		level uint8
	}{{"loud", 15}, {"quiet", 90}} {
		pub, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Close()
		recv, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		defer recv.Close()
		recv.OnTrack(onTrack)
		track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", p.who)
		if err != nil {
			t.Fatal(err)
		}
		sender, err := pub.AddTrack(track)
		if err != nil {
			t.Fatal(err)
		}
		connectPair(t, pub, recv)
		id, ok := ExtensionID(sender.GetParameters().RTPParameters)
		if !ok {
			t.Fatal("publisher did not negotiate the audio level extension")
		}
		senders.Add(1)
		go func() {
			defer senders.Done()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for seq := uint16(0); ; seq++ {
				pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960}, Payload: make([]byte, 80)}
				_ = pkt.SetExtension(id, []byte{0x80 | p.level})
				if err := track.WriteRTP(pkt); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
	}

	// The space owner: Observe what the readers hand over, Tick every 200 ms.
	d, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(15 * time.Second)
	var speakers []string
	for !slices.Equal(speakers, []string{"loud"}) {
		select {
		case o := <-levels:
			d.Observe(o.who, o.level, o.at)
		case now := <-tick.C:
			speakers, _ = d.Tick(now)
		case <-deadline:
			t.Fatalf("speakers %v, want [loud]", speakers)
		}
	}
	close(stop)
	senders.Wait()
}

// connectPair: offer from a, answer from b, non-trickle.
func connectPair(t *testing.T, a, b *webrtc.PeerConnection) {
	t.Helper()
	offer, err := a.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(a)
	if err := a.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-g
	if err := b.SetRemoteDescription(*a.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := b.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	g = webrtc.GatheringCompletePromise(b)
	if err := b.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-g
	if err := a.SetRemoteDescription(*b.LocalDescription()); err != nil {
		t.Fatal(err)
	}
}
