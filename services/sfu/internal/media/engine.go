// Package media builds the SFU's peer connections on pion/webrtc: the codecs, one ICE UDP
// port (and one ICE-TCP port) shared by every peer connection, and the bandwidth estimator
// of subscribe connections. The spaces (internal/space) do the forwarding.
package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/services/sfu/internal/simulcast"
)

// Options configure the Engine.
type Options struct {
	BindIP    string   // address the ICE sockets listen on ("" = every interface)
	UDPPort   int      // ICE UDP port (0 = any free port)
	TCPPort   int      // ICE-TCP port (0 = any free port, < 0 = no ICE-TCP)
	PublicIPs []string // announced instead of the local addresses (1:1 NAT)
	Logger    *slog.Logger
}

// Engine owns the ICE sockets and builds peer connections.
type Engine struct {
	api     *webrtc.API
	udp     net.PacketConn
	tcp     net.Listener
	udpMux  ice.UDPMux
	tcpMux  ice.TCPMux
	log     *slog.Logger
	udpPort int
	tcpPort int
	bwe     *simulcast.BWE
}

// Codecs the SFU forwards, with the payload types browsers use.
var (
	codecOpus = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
	}, PayloadType: 111}
	videoFeedback = []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	codecsVideo   = []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback}, PayloadType: 96},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: videoFeedback}, PayloadType: 102},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", RTCPFeedback: videoFeedback}, PayloadType: 104},
	}
)

// RegisterCodecs registers Opus, VP8 and H.264 (constrained baseline and baseline,
// packetization-mode 1) on m. Clients use it too so payload types agree.
func RegisterCodecs(m *webrtc.MediaEngine) error {
	if err := m.RegisterCodec(codecOpus, webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	for _, c := range codecsVideo {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
	}
	return nil
}

// NewEngine opens the ICE sockets.
func NewEngine(o Options) (*Engine, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &webrtc.MediaEngine{}
	if err := RegisterCodecs(m); err != nil {
		return nil, err
	}
	// Chrome sends each audio packet's level (RFC 6464): the active speaker detection reads it.
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	// RID simulcast: the layers of one m-line are told apart by these extensions.
	for _, uri := range []string{sdp.SDESMidURI, sdp.SDESRTPStreamIDURI, sdp.SDESRepairRTPStreamIDURI} {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	ir := &interceptor.Registry{}
	// NACK generator and responder, RTCP sender/receiver reports, stats, TWCC header extension.
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	// Send-side bandwidth estimates of every connection (the simulcast layer choice reads
	// those of the subscribe connections).
	bwe, err := simulcast.RegisterBWE(m, ir, simulcast.BWEOptions{})
	if err != nil {
		return nil, err
	}
	e := &Engine{log: log, bwe: bwe}
	udp, err := net.ListenPacket("udp", net.JoinHostPort(o.BindIP, strconv.Itoa(o.UDPPort)))
	if err != nil {
		return nil, fmt.Errorf("ice udp listen: %w", err)
	}
	e.udp = udp
	e.udpPort = udp.LocalAddr().(*net.UDPAddr).Port
	// A large receive buffer absorbs keyframe bursts from publishers.
	if uc, ok := udp.(*net.UDPConn); ok {
		_ = uc.SetReadBuffer(4 << 20)
		_ = uc.SetWriteBuffer(4 << 20)
	}
	s := webrtc.SettingEngine{}
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	e.udpMux = webrtc.NewICEUDPMux(nil, udp)
	s.SetICEUDPMux(e.udpMux)
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if o.TCPPort >= 0 {
		tcp, err := net.Listen("tcp", net.JoinHostPort(o.BindIP, strconv.Itoa(o.TCPPort)))
		if err != nil {
			udp.Close()
			return nil, fmt.Errorf("ice tcp listen: %w", err)
		}
		e.tcp = tcp
		e.tcpPort = tcp.Addr().(*net.TCPAddr).Port
		e.tcpMux = webrtc.NewICETCPMux(nil, tcp, 64)
		s.SetICETCPMux(e.tcpMux)
		types = append(types, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	s.SetNetworkTypes(types)
	if ip := net.ParseIP(o.BindIP); ip != nil && ip.IsLoopback() {
		s.SetIncludeLoopbackCandidate(true)
	}
	if len(o.PublicIPs) > 0 {
		s.SetNAT1To1IPs(o.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	e.api = webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(s))
	return e, nil
}

// UDPPort is the ICE UDP port actually bound.
func (e *Engine) UDPPort() int { return e.udpPort }

// TCPPort is the ICE-TCP port actually bound (0 when disabled).
func (e *Engine) TCPPort() int { return e.tcpPort }

// NewPeerConnection builds a peer connection on the shared sockets.
func (e *Engine) NewPeerConnection() (*webrtc.PeerConnection, error) {
	pc, _, err := e.NewPeerConnectionWithEstimate()
	return pc, err
}

// NewPeerConnectionWithEstimate also returns the connection's send bandwidth estimate.
func (e *Engine) NewPeerConnectionWithEstimate() (*webrtc.PeerConnection, simulcast.Estimate, error) {
	pc, err := e.api.NewPeerConnection(webrtc.Configuration{SDPSemantics: webrtc.SDPSemanticsUnifiedPlan})
	if err != nil {
		return nil, simulcast.Estimate{}, err
	}
	est, err := e.bwe.Take(pc)
	if err != nil {
		_ = pc.Close()
		return nil, simulcast.Estimate{}, err
	}
	return pc, est, nil
}

// Close releases the sockets.
func (e *Engine) Close() error {
	var errs []error
	if e.udpMux != nil {
		errs = append(errs, e.udpMux.Close())
	}
	if e.tcpMux != nil {
		errs = append(errs, e.tcpMux.Close())
	}
	return errors.Join(errs...)
}
