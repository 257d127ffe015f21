// Package spacesclient is a Go client of the SFU's Mux Spaces protocol (docs/rtc-protocol.md):
// it joins a space over the WebSocket, answers the server's subscribe offers, publishes
// tracks on its own publish connection and reports remote tracks and signaling events. The
// load test and the Go tests use it.
package spacesclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/libs/idgen"
	"github.com/spacecast/spacecast/services/sfu/internal/media"
	"github.com/spacecast/spacecast/services/sfu/internal/space"
)

// Wire types (see docs/rtc-protocol.md).
type (
	Joined      = space.Joined
	Message     = space.Out
	Participant = space.Participant
	Track       = space.Track
)

// ServerError is an error message the server sent before joined, or the last one before it
// closed a joined connection.
type ServerError struct {
	Type    int
	Message string
	// CloseCode is the WebSocket close status that followed (-1: none was seen).
	CloseCode websocket.StatusCode
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("spaces: error type %d: %s (close %d)", e.Type, e.Message, e.CloseCode)
}

// ErrClosed is returned by calls on a closed client.
var ErrClosed = errors.New("spacesclient: closed")

// Options tune a client.
type Options struct {
	Logger      *slog.Logger
	DisplayName string
	// Managed is managed_subscriptions: nil = 16 (automatic), 0 = manual.
	Managed *int
	// ReconnectID resumes an earlier connection of the same participant.
	ReconnectID string
	// LoopbackOnly gathers only 127.0.0.1 candidates (tests and benchmarks on one machine).
	LoopbackOnly bool
	// TCPOnly uses ICE-TCP only, as a client behind a firewall that blocks UDP.
	TCPOnly bool
	// MinimalInterceptors registers only NACK and RTCP reports (cheaper for load tests).
	MinimalInterceptors bool
	// NoNACK leaves out NACK (with MinimalInterceptors), so measured loss is before repair.
	NoNACK bool
	// ReadBuffer, with LoopbackOnly, gives the client's connections one shared 127.0.0.1 UDP
	// socket with this receive buffer in bytes (capped by net.core.rmem_max); 0: a socket per
	// connection with the system's default buffer. Load tests raise it so that a starved load
	// generator does not drop what the SFU sent.
	ReadBuffer int
	// OnTrack, when set, is called for every remote track instead of sending it on Tracks().
	OnTrack func(*RemoteTrack)
}

// RemoteTrack is another participant's track arriving on this client.
type RemoteTrack struct {
	TID      string // the publisher's track id (the msid stream id)
	Track    *webrtc.TrackRemote
	Receiver *webrtc.RTPReceiver
}

// Client is one connection to a space.
type Client struct {
	o      Options
	log    *slog.Logger
	api    *webrtc.API
	mux    ice.UDPMux // Options.ReadBuffer's socket (nil: none)
	conn   *websocket.Conn
	info   Joined
	ctx    context.Context
	cancel context.CancelFunc
	writeM sync.Mutex

	sub *webrtc.PeerConnection

	pubMu   sync.Mutex
	pub     *webrtc.PeerConnection
	answers chan string

	tracks chan *RemoteTrack
	events chan Message

	errMu   sync.Mutex
	err     error
	lastErr *ServerError // the last error message after joined
	done    chan struct{}
	once    sync.Once
}

// Join connects to base (ws://host/spaces; the client appends /v1) with token and returns
// once joined.
func Join(ctx context.Context, base, token string, o Options) (*Client, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	api, mux, err := newAPI(o)
	if err != nil {
		return nil, err
	}
	joined := false
	defer func() {
		if !joined && mux != nil {
			_ = mux.Close()
		}
	}()
	q := url.Values{"token": {token}, "sdk_version": {"go-spacesclient"}}
	managed := 16
	if o.Managed != nil {
		managed = *o.Managed
	}
	q.Set("managed_subscriptions", strconv.Itoa(managed))
	if o.DisplayName != "" {
		q.Set("display_name", o.DisplayName)
	}
	if o.ReconnectID != "" {
		q.Set("reconnect_id", o.ReconnectID)
		q.Set("reconnect_attempt", "1")
	}
	conn, _, err := websocket.Dial(ctx, base+"/v1?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("spacesclient: dial %s: %w", base, err)
	}
	conn.SetReadLimit(4 << 20)
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{o: o, log: log, api: api, mux: mux, conn: conn, ctx: cctx, cancel: cancel, answers: make(chan string, 1),
		tracks: make(chan *RemoteTrack, 64), events: make(chan Message, 1024), done: make(chan struct{})}
	_, b, err := conn.Read(ctx)
	if err != nil {
		conn.CloseNow()
		cancel()
		return nil, fmt.Errorf("spacesclient: waiting for joined: %w", err)
	}
	var first Message
	if err := json.Unmarshal(b, &first); err != nil {
		conn.CloseNow()
		cancel()
		return nil, fmt.Errorf("spacesclient: first message: %w", err)
	}
	switch {
	case first.Error != nil:
		se := &ServerError{Type: first.Error.Type, Message: first.Error.Message, CloseCode: -1}
		// The close that follows says whether the SDK would retry (4000: it does not).
		rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
		_, _, rerr := conn.Read(rctx)
		rcancel()
		se.CloseCode = websocket.CloseStatus(rerr)
		conn.CloseNow()
		cancel()
		return nil, se
	case first.Joined == nil || len(first.Joined.SubSfus) == 0:
		conn.CloseNow()
		cancel()
		return nil, fmt.Errorf("spacesclient: unexpected first message %s", b)
	}
	c.info = *first.Joined
	c.sub, err = api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		c.Close()
		return nil, err
	}
	c.sub.OnTrack(c.onTrack)
	if err := c.answerSub(ctx, c.info.SubSfus[0]); err != nil {
		c.Close()
		return nil, err
	}
	go c.readLoop()
	joined = true
	return c, nil
}

func newAPI(o Options) (*webrtc.API, ice.UDPMux, error) {
	m := &webrtc.MediaEngine{}
	if err := media.RegisterCodecs(m); err != nil {
		return nil, nil, err
	}
	ir := &interceptor.Registry{}
	if o.MinimalInterceptors {
		if !o.NoNACK {
			if err := webrtc.ConfigureNack(m, ir); err != nil {
				return nil, nil, err
			}
		}
		if err := webrtc.ConfigureRTCPReports(ir); err != nil {
			return nil, nil, err
		}
	} else if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, nil, err
	}
	s := webrtc.SettingEngine{}
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if o.LoopbackOnly {
		s.SetIncludeLoopbackCandidate(true)
		s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
		s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	if o.TCPOnly {
		s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	}
	var mux ice.UDPMux
	if o.LoopbackOnly && !o.TCPOnly && o.ReadBuffer > 0 {
		udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, nil, err
		}
		if err := udp.SetReadBuffer(o.ReadBuffer); err != nil {
			udp.Close()
			return nil, nil, err
		}
		mux = webrtc.NewICEUDPMux(nil, udp)
		s.SetICEUDPMux(mux)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(s)), mux, nil
}

// Info is the server's joined message.
func (c *Client) Info() Joined { return c.info }

// Tracks delivers remote tracks (unless Options.OnTrack is set).
func (c *Client) Tracks() <-chan *RemoteTrack { return c.tracks }

// Events delivers every message after joined except offers and answers.
func (c *Client) Events() <-chan Message { return c.events }

// Done is closed when the connection ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection ended: a *ServerError when the server sent an error message
// before closing it.
func (c *Client) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// SubscribeConnection is the connection remote tracks arrive on.
func (c *Client) SubscribeConnection() *webrtc.PeerConnection { return c.sub }

// Send writes one message.
func (c *Client) Send(ctx context.Context, m any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	c.writeM.Lock()
	defer c.writeM.Unlock()
	return c.conn.Write(ctx, websocket.MessageText, b)
}

func (c *Client) finish(err error) {
	c.once.Do(func() {
		c.errMu.Lock()
		c.err = err
		c.errMu.Unlock()
		c.cancel()
		_ = c.sub.Close()
		c.pubMu.Lock()
		if c.pub != nil {
			_ = c.pub.Close()
		}
		c.pubMu.Unlock()
		if c.mux != nil {
			_ = c.mux.Close()
		}
		close(c.done)
	})
}

func (c *Client) readLoop() {
	for {
		_, b, err := c.conn.Read(c.ctx)
		if err != nil {
			c.errMu.Lock()
			se := c.lastErr
			c.errMu.Unlock()
			if se != nil && c.ctx.Err() == nil {
				se.CloseCode = websocket.CloseStatus(err)
				err = se
			}
			c.finish(err)
			return
		}
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			continue
		}
		if m.Error != nil {
			c.errMu.Lock()
			c.lastErr = &ServerError{Type: m.Error.Type, Message: m.Error.Message, CloseCode: -1}
			c.errMu.Unlock()
		}
		switch {
		case m.SubOffer != nil:
			if err := c.answerSub(c.ctx, *m.SubOffer); err != nil {
				c.log.Warn("answering sub_offer failed", "err", err)
			}
		case m.Answer != "":
			select {
			case c.answers <- m.Answer:
			default:
			}
		default:
			select {
			case c.events <- m:
			default:
			}
		}
	}
}

func (c *Client) answerSub(ctx context.Context, d space.SfuDescription) error {
	if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: d.SDP}); err != nil {
		return err
	}
	ans, err := c.sub.CreateAnswer(nil)
	if err != nil {
		return err
	}
	g := webrtc.GatheringCompletePromise(c.sub)
	if err := c.sub.SetLocalDescription(ans); err != nil {
		return err
	}
	select {
	case <-g:
	case <-time.After(3 * time.Second):
	}
	return c.Send(ctx, space.In{SubAnswer: &space.SfuDescription{SfuID: d.SfuID, SDP: c.sub.LocalDescription().SDP}})
}

func (c *Client) onTrack(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	rt := &RemoteTrack{TID: t.StreamID(), Track: t, Receiver: r}
	if c.o.OnTrack != nil {
		c.o.OnTrack(rt)
		return
	}
	select {
	case c.tracks <- rt:
	default:
	}
}

// Publication is one of this client's published tracks.
type Publication struct {
	TID    string
	Mid    string
	Source string
	Sender *webrtc.RTPSender
	// KeyframeRequests receives a value for each PLI/FIR the server forwards (for a
	// PublishLayers publication: those of the first layer).
	KeyframeRequests <-chan struct{}
	// LayerKeyframeRequests, for a PublishLayers publication, has one channel per RID that
	// receives a value for each PLI/FIR of that layer (nil for Publish).
	LayerKeyframeRequests map[string]<-chan struct{}
	// SimulcastExtensions (PublishLayers / PublishSimulcast only) name each packet's mid and
	// layer.
	SimulcastExtensions SimulcastExtensions
}

// Publish announces track (source "camera", "microphone", "screenshare"...) and negotiates
// it; it returns once the server answered.
func (c *Client) Publish(ctx context.Context, track webrtc.TrackLocal, source string) (*Publication, error) {
	return c.publish(ctx, []webrtc.TrackLocal{track}, source)
}

// PublishLayers publishes one video track as RID simulcast, as a browser does with the
// joined message's camera encodings: each of layers is one encoding (the same ID and
// StreamID, its own RID, e.g. webrtc.WithRTPStreamID), layers[0] the base one. The caller
// writes each layer's RTP with the mid and rid header extensions set (pion does not add
// them); the client must be built without MinimalInterceptors, which leave those extensions
// out of the SDP.
func (c *Client) PublishLayers(ctx context.Context, layers []webrtc.TrackLocal, source string) (*Publication, error) {
	if len(layers) < 2 {
		return nil, fmt.Errorf("spacesclient: PublishLayers wants at least two layers, got %d", len(layers))
	}
	for _, l := range layers {
		if l.RID() == "" {
			return nil, fmt.Errorf("spacesclient: PublishLayers: a layer without RID")
		}
	}
	return c.publish(ctx, layers, source)
}

func (c *Client) publish(ctx context.Context, layers []webrtc.TrackLocal, source string) (*Publication, error) {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	select {
	case <-c.done:
		return nil, ErrClosed
	default:
	}
	if c.pub == nil {
		pc, err := c.api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			return nil, err
		}
		c.pub = pc
	}
	track := layers[0]
	tr, err := c.pub.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, err
	}
	for _, l := range layers[1:] {
		if err := tr.Sender().AddEncoding(l); err != nil {
			return nil, err
		}
	}
	// readKeyframeRequests reads one encoding's RTCP (read returns its next packets).
	readKeyframeRequests := func(read func() ([]rtcp.Packet, error)) <-chan struct{} {
		kf := make(chan struct{}, 1)
		go func() {
			for {
				pkts, err := read()
				if err != nil {
					return
				}
				for _, p := range pkts {
					switch p.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						select {
						case kf <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
		return kf
	}
	pubn := &Publication{TID: track.StreamID(), Source: source, Sender: tr.Sender()}
	if len(layers) == 1 {
		pubn.KeyframeRequests = readKeyframeRequests(func() ([]rtcp.Packet, error) {
			pkts, _, err := tr.Sender().ReadRTCP()
			return pkts, err
		})
	} else {
		pubn.LayerKeyframeRequests = map[string]<-chan struct{}{}
		for _, l := range layers {
			rid := l.RID()
			pubn.LayerKeyframeRequests[rid] = readKeyframeRequests(func() ([]rtcp.Packet, error) {
				pkts, _, err := tr.Sender().ReadSimulcastRTCP(rid)
				return pkts, err
			})
		}
		pubn.KeyframeRequests = pubn.LayerKeyframeRequests[layers[0].RID()]
	}
	if err := c.negotiatePub(ctx, func() error {
		kind := space.KindVideo
		if track.Kind() == webrtc.RTPCodecTypeAudio {
			kind = space.KindAudio
		}
		return c.Send(ctx, space.In{PendingTrack: &space.PendingTrack{TID: track.StreamID(), Type: kind, Name: track.ID(),
			Source: source, Mid: tr.Mid()}})
	}); err != nil {
		return nil, err
	}
	pubn.Mid = tr.Mid()
	if len(layers) > 1 {
		for _, e := range tr.Sender().GetParameters().HeaderExtensions {
			switch e.URI {
			case sdp.SDESMidURI:
				pubn.SimulcastExtensions.MidID = uint8(e.ID)
			case sdp.SDESRTPStreamIDURI:
				pubn.SimulcastExtensions.RIDID = uint8(e.ID)
			}
		}
		if pubn.SimulcastExtensions.MidID == 0 || pubn.SimulcastExtensions.RIDID == 0 {
			return nil, errors.New("spacesclient: the mid and rid header extensions were not negotiated")
		}
	}
	return pubn, nil
}

// PublishSimulcast is PublishLayers for layers made with webrtc.NewTrackLocalStaticRTP and
// webrtc.WithRTPStreamID(rid) (the same id and stream id): write every packet with
// Publication.SimulcastExtensions set.
func (c *Client) PublishSimulcast(ctx context.Context, layers []*webrtc.TrackLocalStaticRTP, source string) (*Publication, error) {
	tl := make([]webrtc.TrackLocal, len(layers))
	for i, l := range layers {
		tl[i] = l
	}
	return c.PublishLayers(ctx, tl, source)
}

// SimulcastExtensions are the negotiated ids of the header extensions that name a simulcast
// packet's mid and layer.
type SimulcastExtensions struct {
	MidID, RIDID uint8
}

// Set puts mid and rid on p.
func (e SimulcastExtensions) Set(p *rtp.Packet, mid, rid string) error {
	if err := p.SetExtension(e.MidID, []byte(mid)); err != nil {
		return err
	}
	return p.SetExtension(e.RIDID, []byte(rid))
}

// NewTrackID returns a fresh track id for a publication's stream id.
func NewTrackID() string { return idgen.New() }

// negotiatePub offers on the publish connection; before sends the pending tracks.
func (c *Client) negotiatePub(ctx context.Context, before func() error) error {
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		return err
	}
	g := webrtc.GatheringCompletePromise(c.pub)
	if err := c.pub.SetLocalDescription(offer); err != nil {
		return err
	}
	select {
	case <-g:
	case <-time.After(3 * time.Second):
	}
	if before != nil {
		if err := before(); err != nil {
			return err
		}
	}
	sdp := c.pub.LocalDescription().SDP
	if err := c.Send(ctx, space.In{Offer: &sdp}); err != nil {
		return err
	}
	select {
	case a := <-c.answers:
		return c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a})
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unpublish stops sending p and renegotiates.
func (c *Client) Unpublish(ctx context.Context, p *Publication) error {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	if err := c.pub.RemoveTrack(p.Sender); err != nil {
		return err
	}
	return c.negotiatePub(ctx, nil)
}

// Mute marks a published track muted or unmuted.
func (c *Client) Mute(ctx context.Context, tid string, muted bool) error {
	if muted {
		return c.Send(ctx, space.In{MuteTrack: &tid})
	}
	return c.Send(ctx, space.In{UnmuteTrack: &tid})
}

// Subscribe asks (manual mode) for tids of a connection; Unsubscribe with on=false.
func (c *Client) Subscribe(ctx context.Context, connectionID string, tids []string, on bool) error {
	req := &space.SubscribeRequest{Connections: []space.ConnectionTracks{{ConnectionID: connectionID, TrackIDs: tids}}}
	if on {
		return c.Send(ctx, space.In{SubscribeTracks: req})
	}
	return c.Send(ctx, space.In{UnsubscribeTracks: req})
}

// CustomEvent publishes payload to the space.
func (c *Client) CustomEvent(ctx context.Context, payload string) (requestID string, err error) {
	id := idgen.New()
	return id, c.Send(ctx, space.In{RequestID: id, CustomEvent: &space.CustomEvent{ID: id, Payload: payload, Scope: 1}})
}

// Ping checks the connection with a WebSocket ping.
func (c *Client) Ping(ctx context.Context) error { return c.conn.Ping(ctx) }

// Leave closes the connection as the SDK's leave() does (no status code).
func (c *Client) Leave() error {
	err := c.conn.Close(websocket.StatusNormalClosure, "")
	c.finish(ErrClosed)
	return err
}

// Drop closes the socket with a code that is not a leave (a network drop): the participant
// may come back with ReconnectID.
func (c *Client) Drop() {
	_ = c.conn.Close(3001, "dropped")
	c.finish(ErrClosed)
}

// Close ends the connection without a close handshake.
func (c *Client) Close() error {
	err := c.conn.CloseNow()
	c.finish(ErrClosed)
	return err
}
