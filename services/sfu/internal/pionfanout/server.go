// Package pionfanout is the benchmark anchor of the SFU: the least work a pion/webrtc fan-out
// can do. One publisher's VP8 and Opus arrive into two TrackLocalStaticRTP tracks that every
// subscriber connection carries; subscribers' PLI/FIR go to the publisher as PLI, and so does
// a new subscriber's connecting (it needs a keyframe, as the SFU knows too). It builds
// its connections with the SFU's media.Engine (the same codecs, interceptors and single ICE
// UDP port as the node's) so that the comparison is of the forwarding, not of the setup.
// Signalling is one HTTP POST of a complete (non-trickle) SDP offer per connection.
package pionfanout

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/services/sfu/internal/media"
)

// Paths of the two signalling endpoints (POST, body and answer: application/sdp).
const (
	PublishPath   = "/publish"
	SubscribePath = "/subscribe"
)

// Stream ids of the forwarded tracks as subscribers see them.
const (
	VideoStreamID = "anchor-camera"
	AudioStreamID = "anchor-microphone"
)

// Server is the fan-out: Handler serves the signalling, Close ends every connection.
type Server struct {
	eng          *media.Engine
	log          *slog.Logger
	video, audio *webrtc.TrackLocalStaticRTP
	pub          atomic.Pointer[publisher]

	mu     sync.Mutex
	pcs    []*webrtc.PeerConnection
	closed bool
}

type publisher struct {
	pc        *webrtc.PeerConnection
	videoSSRC atomic.Uint32
}

// New opens the ICE UDP port on bindIP (port 0: any free one).
func New(bindIP string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	eng, err := media.NewEngine(media.Options{BindIP: bindIP, TCPPort: -1, Logger: log})
	if err != nil {
		return nil, err
	}
	video, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", VideoStreamID)
	if err != nil {
		eng.Close()
		return nil, err
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", AudioStreamID)
	if err != nil {
		eng.Close()
		return nil, err
	}
	return &Server{eng: eng, log: log, video: video, audio: audio}, nil
}

// Handler serves PublishPath and SubscribePath.
func (s *Server) Handler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST "+PublishPath, s.publish)
	m.HandleFunc("POST "+SubscribePath, s.subscribe)
	return m
}

// Close closes every connection and the ICE port.
func (s *Server) Close() error {
	s.mu.Lock()
	pcs := s.pcs
	s.pcs, s.closed = nil, true
	s.mu.Unlock()
	var errs []error
	for _, pc := range pcs {
		errs = append(errs, pc.Close())
	}
	errs = append(errs, s.eng.Close())
	return errors.Join(errs...)
}

// newPC builds a connection that closes itself when ICE fails or disconnects (a subscriber's
// handler replaces that callback with one that also does so).
func (s *Server) newPC() (*webrtc.PeerConnection, error) {
	pc, err := s.eng.NewPeerConnection()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = pc.Close()
		return nil, ErrClosed
	}
	s.pcs = append(s.pcs, pc)
	s.mu.Unlock()
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateDisconnected {
			_ = pc.Close()
		}
	})
	return pc, nil
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	pc, err := s.newPC()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	p := &publisher{pc: pc}
	if !s.pub.CompareAndSwap(nil, p) {
		_ = pc.Close()
		http.Error(w, ErrPublisherExists.Error(), http.StatusConflict)
		return
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		local := s.audio
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			local = s.video
			p.videoSSRC.Store(uint32(tr.SSRC()))
		}
		go func() { // the receiver's RTCP (sender reports) runs its interceptors
			for {
				if _, _, err := recv.ReadRTCP(); err != nil {
					return
				}
			}
		}()
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if err := local.WriteRTP(pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
				s.log.Warn("pionfanout: forward", "err", err)
			}
		}
	})
	if !s.answer(w, r, pc) {
		s.pub.CompareAndSwap(p, nil) // a failed offer does not hold the publisher's place
	}
}

func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	pc, err := s.newPC()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for _, local := range []*webrtc.TrackLocalStaticRTP{s.video, s.audio} {
		sender, err := pc.AddTrack(local)
		if err != nil {
			_ = pc.Close()
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		go s.forwardKeyframeRequests(sender)
	}
	// A new subscriber needs a keyframe to start decoding: ask the publisher for one.
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			s.requestKeyframe()
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected:
			_ = pc.Close()
		}
	})
	s.answer(w, r, pc)
}

// forwardKeyframeRequests reads a subscriber sender's RTCP (which runs its interceptors) and
// sends each PLI or FIR to the publisher's camera as a PLI.
func (s *Server) forwardKeyframeRequests(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pk := range pkts {
			switch pk.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				s.requestKeyframe()
			}
		}
	}
}

// requestKeyframe sends a PLI to the publisher's camera (once it is known).
func (s *Server) requestKeyframe() {
	if p := s.pub.Load(); p != nil && p.videoSSRC.Load() != 0 {
		_ = p.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: p.videoSSRC.Load()}})
	}
}

// answer applies the offer in r's body and writes the answer once ICE gathering completed;
// on failure it closes pc, writes the error and returns false.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, pc *webrtc.PeerConnection) bool {
	fail := func(code int, err error) bool {
		_ = pc.Close()
		http.Error(w, err.Error(), code)
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return fail(http.StatusBadRequest, err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(body)}); err != nil {
		return fail(http.StatusBadRequest, err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(http.StatusInternalServerError, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return fail(http.StatusInternalServerError, err)
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		return fail(http.StatusInternalServerError, ErrGatheringTimeout)
	}
	w.Header().Set("Content-Type", "application/sdp")
	_, _ = io.WriteString(w, pc.LocalDescription().SDP)
	return true
}
