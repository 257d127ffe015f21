package simulcast

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/transport/v4/vnet"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
)

var rids = []string{"q", "h", "f"} // layer index = position

var vp8 = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
	MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
	RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "transport-cc"}},
}, PayloadType: 96}

// newAPI is a VP8-only pion API on vn (nil: loopback UDP ports 18200-18299) with the default
// interceptors (NACK, reports, TWCC feedback, simulcast header extensions) and, with bwe,
// the send-side estimator.
func newAPI(t *testing.T, bwe bool, vn *vnet.Net) (*webrtc.API, *BWE) {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(vp8, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	var b *BWE
	if bwe {
		var err error
		if b, err = RegisterBWE(m, ir, BWEOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	if vn != nil {
		se.SetNet(vn)
	} else {
		if err := se.SetEphemeralUDPPortRange(18200, 18299); err != nil {
			t.Fatal(err)
		}
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), b
}

func newPC(t *testing.T, api *webrtc.API) *webrtc.PeerConnection {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// connect runs a non-trickle offer/answer from offerer to answerer.
func connect(t *testing.T, offerer, answerer *webrtc.PeerConnection) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	offer, err := offerer.CreateOffer(nil)
	must(err)
	g := webrtc.GatheringCompletePromise(offerer)
	must(offerer.SetLocalDescription(offer))
	<-g
	must(answerer.SetRemoteDescription(*offerer.LocalDescription()))
	answer, err := answerer.CreateAnswer(nil)
	must(err)
	g = webrtc.GatheringCompletePromise(answerer)
	must(answerer.SetLocalDescription(answer))
	<-g
	must(offerer.SetRemoteDescription(*answerer.LocalDescription()))
}

func readIVF(t *testing.T, name string) [][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for {
		fr, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, fr)
	}
	if len(frames) == 0 || frames[0][0]&1 != 0 {
		t.Fatalf("%s: %d frames, first not a keyframe", name, len(frames))
	}
	return frames
}

// vp8Packets packetizes a frame with a descriptor carrying a 15-bit picture id that tells the
// receiver the layer (top bits) and the layer's frame count (low 12 bits).
func vp8Packets(frame []byte, layer int, n uint32) [][]byte {
	pid := uint16(layer)<<12 | uint16(n&0xfff)
	var out [][]byte
	for off := 0; off < len(frame); off += 1100 {
		end := min(off+1100, len(frame))
		d := byte(0x80) // X
		if off == 0 {
			d |= 0x10 // S, partition 0
		}
		p := append([]byte{d, 0x80, 0x80 | byte(pid>>8), byte(pid)}, frame[off:end]...)
		out = append(out, p)
	}
	return out
}

// publisher sends the three layers' clips in a loop at 30 fps, restarting a layer at its
// keyframe when a PLI for its SSRC arrives. The WaitGroup run returns ends with the senders.
type publisher struct {
	pc     *webrtc.PeerConnection
	sender *webrtc.RTPSender
	tracks map[string]*webrtc.TrackLocalStaticRTP
	plis   [3]atomic.Int64
}

func newPublisher(t *testing.T, api *webrtc.API) *publisher {
	p := &publisher{pc: newPC(t, api), tracks: map[string]*webrtc.TrackLocalStaticRTP{}}
	for _, rid := range rids {
		tr, err := webrtc.NewTrackLocalStaticRTP(vp8.RTPCodecCapability, "camera", "publisher", webrtc.WithRTPStreamID(rid))
		if err != nil {
			t.Fatal(err)
		}
		p.tracks[rid] = tr
	}
	var err error
	if p.sender, err = p.pc.AddTrack(p.tracks["q"]); err != nil {
		t.Fatal(err)
	}
	for _, rid := range rids[1:] {
		if err := p.sender.AddEncoding(p.tracks[rid]); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p *publisher) run(t *testing.T, stop <-chan struct{}, clips map[string][][]byte) *sync.WaitGroup {
	params := p.sender.GetParameters()
	var midID, ridID uint8
	for _, e := range params.HeaderExtensions {
		switch e.URI {
		case "urn:ietf:params:rtp-hdrext:sdes:mid":
			midID = uint8(e.ID)
		case "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id":
			ridID = uint8(e.ID)
		}
	}
	if midID == 0 || ridID == 0 {
		t.Fatalf("mid/rid header extensions not negotiated: %+v", params.HeaderExtensions)
	}
	mid := p.pc.GetTransceivers()[0].Mid()
	var wg sync.WaitGroup
	restart := [3]atomic.Bool{}
	for li, rid := range rids {
		wg.Add(1)
		go func() { // RTCP: PLIs for this layer, until the connection closes
			for {
				pkts, _, err := p.sender.ReadSimulcastRTCP(rid)
				if err != nil {
					return
				}
				for _, pk := range pkts {
					if _, ok := pk.(*rtcp.PictureLossIndication); ok {
						p.plis[li].Add(1)
						restart[li].Store(true)
					}
				}
			}
		}()
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / 30)
			defer tick.Stop()
			seq, ts := uint16(li*20000+7), uint32(li)*1_000_000_000
			idx := 0
			for n := uint32(0); ; n++ {
				if restart[li].Swap(false) {
					idx = 0
				}
				frame := clips[rid][idx]
				idx = (idx + 1) % len(clips[rid])
				pkts := vp8Packets(frame, li, n)
				for i, payload := range pkts {
					pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, Marker: i == len(pkts)-1}, Payload: payload}
					_ = pkt.SetExtension(midID, []byte(mid))
					_ = pkt.SetExtension(ridID, []byte(rid))
					seq++
					if err := p.tracks[rid].WriteRTP(pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
						t.Errorf("publisher %s: %v", rid, err)
						return
					}
				}
				ts += 3000
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	return &wg
}

// received is what one subscriber's track got.
type received struct {
	mu     sync.Mutex
	tracks int
	pkts   []rtp.Packet // in arrival order
}

func (r *received) snapshot() []rtp.Packet {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pkts)
}

type frame struct {
	layer, n int
	key      bool
	ts       uint32
	data     []byte
	complete bool
}

// frames orders the packets by (unwrapped) sequence number, checks there is no gap, and
// assembles VP8 frames using pion's depacketizer.
func frames(t *testing.T, name string, pkts []rtp.Packet) []frame {
	t.Helper()
	if len(pkts) == 0 {
		t.Fatalf("%s: no packets", name)
	}
	type seqd struct {
		ext int64
		p   rtp.Packet
	}
	var all []seqd
	ext := int64(pkts[0].SequenceNumber)
	prev := pkts[0].SequenceNumber
	for _, p := range pkts {
		ext += int64(int16(p.SequenceNumber - prev))
		prev = p.SequenceNumber
		all = append(all, seqd{ext, p})
	}
	slices.SortStableFunc(all, func(a, b seqd) int { return int(a.ext - b.ext) })
	all = slices.CompactFunc(all, func(a, b seqd) bool { return a.ext == b.ext })
	for i := 1; i < len(all); i++ {
		if all[i].ext != all[i-1].ext+1 {
			t.Fatalf("%s: sequence gap %d -> %d", name, all[i-1].ext, all[i].ext)
		}
	}
	var out []frame
	var cur *frame
	for _, s := range all {
		var d codecs.VP8Packet
		payload, err := d.Unmarshal(s.p.Payload)
		if err != nil {
			t.Fatalf("%s: VP8 payload: %v", name, err)
		}
		if d.S == 1 && d.PID == 0 {
			if cur != nil {
				out = append(out, *cur)
			}
			cur = &frame{layer: int(d.PictureID >> 12), n: int(d.PictureID & 0xfff), key: payload[0]&1 == 0, ts: s.p.Timestamp}
		}
		if cur == nil {
			continue // the tail of a frame started before the first packet
		}
		if s.p.Timestamp != cur.ts || int(d.PictureID>>12) != cur.layer {
			t.Fatalf("%s: packet of another frame inside frame %+v", name, *cur)
		}
		cur.data = append(cur.data, payload...)
		if s.p.Marker {
			cur.complete = true
			out = append(out, *cur)
			cur = nil
		}
	}
	return out
}

// checkFrames: the stream starts with a keyframe, every change of layer happens at a keyframe
// of the new layer, frames of a layer are consecutive, timestamps increase; returns the
// layers in the order they were received.
func checkFrames(t *testing.T, name string, fs []frame) []string {
	t.Helper()
	if len(fs) == 0 || !fs[0].key {
		t.Fatalf("%s: does not start with a keyframe", name)
	}
	layers := []string{rids[fs[0].layer]}
	for i := 1; i < len(fs); i++ {
		p, f := fs[i-1], fs[i]
		if int32(f.ts-p.ts) <= 0 {
			t.Fatalf("%s: frame %d timestamp %d after %d", name, i, f.ts, p.ts)
		}
		if f.layer != p.layer {
			if !f.key {
				t.Fatalf("%s: frame %d switches from %s to %s without a keyframe", name, i, rids[p.layer], rids[f.layer])
			}
			layers = append(layers, rids[f.layer])
			continue
		}
		if !p.complete {
			t.Fatalf("%s: incomplete frame %d inside layer %s", name, i-1, rids[p.layer])
		}
		if f.n != (p.n+1)%4096 {
			t.Fatalf("%s: frame %d of layer %s skips from %d to %d", name, i, rids[f.layer], p.n, f.n)
		}
	}
	return layers
}

// rig: a publisher sending three simulcast VP8 layers to a relay; the relay feeds one
// Forwarder per subscriber; each subscriber receives one video track.
type rig struct {
	pub      *publisher
	relayPub *webrtc.PeerConnection
	subs     []*subscriber
	stop     chan struct{}
	pubDone  *sync.WaitGroup
	readers  sync.WaitGroup
	mu       sync.Mutex
	remotes  map[string]*webrtc.TrackRemote
	fws      []*Forwarder
	writeErr atomic.Value
	meter    *Meter
}

type subscriber struct {
	fw      *Forwarder
	relay   *webrtc.PeerConnection
	est     Estimate
	changes atomic.Int64
	got     *received
	// receiverPLIs counts the keyframe requests of the subscriber's "decoder".
	receiverPLIs atomic.Int64
}

// nets gives each party ("relay", "publisher", "subscriber0", ...) its network: nil for
// loopback UDP.
func newRig(t *testing.T, nsubs int, nets func(party string) *vnet.Net) *rig {
	t.Helper()
	clips := map[string][][]byte{}
	for _, rid := range rids {
		clips[rid] = readIVF(t, rid+".ivf")
	}
	relayAPI, bwe := newAPI(t, true, nets("relay"))
	r := &rig{remotes: map[string]*webrtc.TrackRemote{}, stop: make(chan struct{}), meter: NewMeter(nil)}

	// Relay side of the publisher: one remote track per RID.
	r.relayPub = newPC(t, relayAPI)
	if _, err := bwe.Take(r.relayPub); err != nil {
		t.Fatal(err)
	}
	r.relayPub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		rid := tr.RID()
		r.mu.Lock()
		r.remotes[rid] = tr
		r.mu.Unlock()
		r.readers.Add(1)
		go func() {
			defer r.readers.Done()
			for {
				pkt, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				r.meter.Observe(rid, pkt)
				r.mu.Lock()
				fws := r.fws
				r.mu.Unlock()
				for _, fw := range fws {
					if err := fw.Write(rid, pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
						r.writeErr.Store(err)
					}
				}
			}
		}()
	})

	for i := range nsubs {
		s := &subscriber{relay: newPC(t, relayAPI), got: &received{}}
		var err error
		if s.est, err = bwe.Take(s.relay); err != nil {
			t.Fatal(err)
		}
		s.est.OnChange(func(uint64) { s.changes.Add(1) })
		local, err := webrtc.NewTrackLocalStaticRTP(vp8.RTPCodecCapability, "camera", "publisher")
		if err != nil {
			t.Fatal(err)
		}
		sender, err := s.relay.AddTrack(local)
		if err != nil {
			t.Fatal(err)
		}
		if s.fw, err = NewForwarder(ForwarderOptions{MimeType: webrtc.MimeTypeVP8, Writer: local, Target: "f", RequestKeyframe: r.requestKeyframe}); err != nil {
			t.Fatal(err)
		}
		go func() { // subscriber RTCP: its PLIs go to the publisher's current layer
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, pk := range pkts {
					if _, ok := pk.(*rtcp.PictureLossIndication); ok {
						if cur := s.fw.Current(); cur != "" {
							r.requestKeyframe(cur)
						}
					}
				}
			}
		}()
		subAPI, _ := newAPI(t, false, nets(fmt.Sprintf("subscriber%d", i)))
		sub := newPC(t, subAPI)
		sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			s.got.mu.Lock()
			s.got.tracks++
			s.got.mu.Unlock()
			go func() {
				// Like a browser's decoder: a frame of a layer (the test's picture ids carry
				// it) whose keyframe did not arrive (lost on a lossy link) cannot be decoded,
				// and asks for a keyframe with a PLI, at most every 500 ms.
				decodable := -1
				var lastPLI time.Time
				for {
					pkt, _, err := tr.ReadRTP()
					if err != nil {
						return
					}
					s.got.mu.Lock()
					s.got.pkts = append(s.got.pkts, *pkt)
					s.got.mu.Unlock()
					var d codecs.VP8Packet
					payload, err := d.Unmarshal(pkt.Payload)
					if err != nil || d.S != 1 || d.PID != 0 || len(payload) == 0 {
						continue
					}
					layer := int(d.PictureID >> 12)
					switch {
					case payload[0]&1 == 0:
						decodable = layer
					case layer != decodable && time.Since(lastPLI) >= 500*time.Millisecond:
						lastPLI = time.Now()
						s.receiverPLIs.Add(1)
						_ = sub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(tr.SSRC())}})
					}
				}
			}()
		})
		connect(t, s.relay, sub)
		r.mu.Lock()
		r.fws = append(r.fws, s.fw)
		r.mu.Unlock()
		r.subs = append(r.subs, s)
	}

	pubAPI, _ := newAPI(t, false, nets("publisher"))
	r.pub = newPublisher(t, pubAPI)
	connect(t, r.pub.pc, r.relayPub)
	r.pubDone = r.pub.run(t, r.stop, clips)
	t.Cleanup(r.close)
	return r
}

func (r *rig) requestKeyframe(rid string) {
	r.mu.Lock()
	tr := r.remotes[rid]
	r.mu.Unlock()
	if tr != nil {
		_ = r.relayPub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(tr.SSRC())}})
	}
}

// close stops the publisher and waits for the relay's readers.
func (r *rig) close() {
	select {
	case <-r.stop:
		return
	default:
	}
	close(r.stop)
	r.pubDone.Wait()
	time.Sleep(200 * time.Millisecond) // let the last packets arrive
	_ = r.relayPub.Close()
	r.readers.Wait()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// layerFrames counts the frames of layer (index into rids) s received, keyframes only with key.
func layerFrames(s *subscriber, layer int, key bool) int {
	n := 0
	for _, p := range s.got.snapshot() {
		var d codecs.VP8Packet
		if payload, err := d.Unmarshal(p.Payload); err == nil && d.S == 1 && d.PID == 0 && int(d.PictureID>>12) == layer && len(payload) > 0 && (!key || payload[0]&1 == 0) {
			n++
		}
	}
	return n
}

// TestRelaySimulcast: two subscribers receive exactly one video track each; one switches from
// f to q and keeps receiving decodable frames (keyframe first, no sequence gap, ffmpeg decodes
// it), the other stays on f.
func TestRelaySimulcast(t *testing.T) {
	if testing.Short() {
		t.Skip("pion integration test")
	}
	r := newRig(t, 2, func(string) *vnet.Net { return nil })
	subs := r.subs
	waitFor(t, "both subscribers to receive 30 frames of f", func() bool {
		return layerFrames(subs[0], 2, false) >= 30 && layerFrames(subs[1], 2, false) >= 30
	})
	qPLIs := r.pub.plis[0].Load()
	subs[0].fw.SetTarget("q")
	waitFor(t, "subscriber 0 to receive 30 frames of q", func() bool { return layerFrames(subs[0], 0, false) >= 30 })
	r.close()

	if err, _ := r.writeErr.Load().(error); err != nil {
		t.Fatalf("Forwarder.Write: %v", err)
	}
	if n := r.pub.plis[0].Load(); n <= qPLIs {
		t.Fatalf("the publisher got no PLI for q after the switch was asked (%d before, %d after)", qPLIs, n)
	}
	for i, s := range subs {
		name := fmt.Sprintf("subscriber %d", i)
		s.got.mu.Lock()
		tracks := s.got.tracks
		s.got.mu.Unlock()
		if tracks != 1 || len(s.relay.GetTransceivers()) != 1 {
			t.Fatalf("%s: %d tracks, %d transceivers; want exactly one video track", name, tracks, len(s.relay.GetTransceivers()))
		}
		fs := frames(t, name, s.got.snapshot())
		layers := checkFrames(t, name, fs)
		want := []string{"f"}
		if i == 0 {
			want = []string{"f", "q"}
		}
		if !slices.Equal(layers, want) {
			t.Fatalf("%s: received layers %v, want %v", name, layers, want)
		}
		if st := s.fw.Stats(); st.Switches != uint64(len(want)-1) || s.fw.Current() != want[len(want)-1] {
			t.Fatalf("%s: forwarder %+v current %q", name, st, s.fw.Current())
		}
		if s.changes.Load() == 0 {
			t.Fatalf("%s: the bandwidth estimate never updated (no transport-cc feedback?)", name)
		}
		t.Logf("%s: %d frames, layers %v, estimate %d bit/s after %d updates, %+v", name, len(fs), layers, s.est.Bitrate(), s.changes.Load(), s.fw.Stats())
		decode(t, name, fs)
	}
}

// decode writes the complete frames to an IVF file and has ffmpeg decode it: no error, every
// frame decoded, the frame size follows the layers (384 wide for f, 96 for q).
func decode(t *testing.T, name string, fs []frame) {
	t.Helper()
	for _, b := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed; CI must install ffmpeg", b)
			}
			t.Logf("%s is not installed: %s frames not decoded (apt-get install ffmpeg)", b, name)
			return
		}
	}
	// IVF: a 32-byte file header, then each frame with a 12-byte header (size, pts).
	var ivf []byte
	ivf = append(ivf, "DKIF"...)
	ivf = binary.LittleEndian.AppendUint16(ivf, 0)
	ivf = binary.LittleEndian.AppendUint16(ivf, 32)
	ivf = append(ivf, "VP80"...)
	ivf = binary.LittleEndian.AppendUint16(ivf, 384)
	ivf = binary.LittleEndian.AppendUint16(ivf, 216)
	ivf = binary.LittleEndian.AppendUint32(ivf, 30) // time base 1/30 s: pts = frame index
	ivf = binary.LittleEndian.AppendUint32(ivf, 1)
	ivf = binary.LittleEndian.AppendUint32(ivf, 0)
	ivf = binary.LittleEndian.AppendUint32(ivf, 0)
	var widths []string
	for _, f := range fs {
		if !f.complete {
			continue
		}
		ivf = binary.LittleEndian.AppendUint32(ivf, uint32(len(f.data)))
		ivf = binary.LittleEndian.AppendUint64(ivf, uint64(len(widths)))
		ivf = append(ivf, f.data...)
		widths = append(widths, map[int]string{0: "96", 1: "192", 2: "384"}[f.layer])
	}
	path := filepath.Join(t.TempDir(), "out.ivf")
	if err := os.WriteFile(path, ivf, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("ffmpeg", "-v", "error", "-xerror", "-i", path, "-f", "null", "-")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("%s: ffmpeg cannot decode the received stream: %v\n%s", name, err, stderr.String())
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "frame=width", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("%s: ffprobe: %v", name, err)
	}
	got := strings.Fields(string(out))
	if !slices.Equal(got, widths) {
		t.Fatalf("%s: decoded %d frames with widths %v...; want %d frames %v...", name, len(got), head(got), len(widths), head(widths))
	}
}

func head(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
