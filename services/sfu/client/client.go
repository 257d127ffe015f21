// Package rtcclient is a Go client for Spacecast spaces: it joins a space over the SFU's
// signaling WebSocket (docs/rtc-protocol.md) with a space JWT, publishes pion tracks and
// receives everyone else's. Tests, the load tool and the CLI use it.
package rtcclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/spacecast/spacecast/services/sfu/internal/media"
	"github.com/spacecast/spacecast/services/sfu/rtcproto"
)

// ServerError is an error message from the server (the connection is closed after it).
type ServerError struct {
	Code    string
	Message string
	NodeID  string
	NodeURL string
}

func (e *ServerError) Error() string { return "sfu: " + e.Code + ": " + e.Message }

// ErrClosed is returned by calls on a closed client.
var ErrClosed = errors.New("rtcclient: closed")

// Options tune a client.
type Options struct {
	Logger *slog.Logger
	// LoopbackOnly gathers only 127.0.0.1 candidates (tests and benchmarks on one machine).
	LoopbackOnly bool
	// FollowRedirect reconnects to node_url when the server answers wrong_node.
	FollowRedirect bool
	// MinimalInterceptors registers only NACK and RTCP reports (cheaper for load tests).
	MinimalInterceptors bool
	// NoNACK leaves out the NACK interceptors (with MinimalInterceptors: RTCP reports only),
	// so that measured loss is the loss before retransmission.
	NoNACK bool
	// TCPOnly uses ICE-TCP only (active TCP candidates), as a client behind a UDP-blocking
	// firewall would.
	TCPOnly bool
	// OnTrack, when set, is called for every remote track instead of sending it on Tracks().
	OnTrack func(*RemoteTrack)
}

// Option sets an option.
type Option func(*Options)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *Options) { o.Logger = l } }

// WithLoopbackOnly restricts ICE to 127.0.0.1.
func WithLoopbackOnly() Option { return func(o *Options) { o.LoopbackOnly = true } }

// WithFollowRedirect follows wrong_node redirects once.
func WithFollowRedirect() Option { return func(o *Options) { o.FollowRedirect = true } }

// WithMinimalInterceptors registers only NACK and RTCP reports.
func WithMinimalInterceptors() Option { return func(o *Options) { o.MinimalInterceptors = true } }

// WithoutNACK leaves out NACK (see Options.NoNACK).
func WithoutNACK() Option { return func(o *Options) { o.NoNACK = true } }

// WithTCPOnly restricts ICE to TCP (see Options.TCPOnly).
func WithTCPOnly() Option { return func(o *Options) { o.TCPOnly = true } }

// WithOnTrack sets the remote track callback.
func WithOnTrack(f func(*RemoteTrack)) Option { return func(o *Options) { o.OnTrack = f } }

// RemoteTrack is another participant's track arriving on this client.
type RemoteTrack struct {
	Info     rtcproto.SubscribedTrack
	Track    *webrtc.TrackRemote
	Receiver *webrtc.RTPReceiver
}

// Publication is one of this client's published tracks.
type Publication struct {
	TrackID string
	Mid     string
	Source  string
	Sender  *webrtc.RTPSender
	// KeyframeRequests receives a value for each PLI/FIR the server forwards.
	KeyframeRequests <-chan struct{}
	kf               chan struct{}
}

// Client is one connection to a space.
type Client struct {
	o      Options
	log    *slog.Logger
	api    *webrtc.API
	conn   *websocket.Conn
	info   rtcproto.Joined
	ctx    context.Context
	cancel context.CancelFunc
	writeM sync.Mutex

	sub       *webrtc.PeerConnection
	subTracks sync.Map // mid -> rtcproto.SubscribedTrack
	offers    chan rtcproto.SDP

	pubMu   sync.Mutex
	pub     *webrtc.PeerConnection
	answers chan rtcproto.SDP

	ownMu      sync.Mutex
	ownWaiters map[string]chan rtcproto.Track // mid -> waiter
	ownTracks  map[string]rtcproto.Track      // mid -> track

	tracks chan *RemoteTrack
	events chan any

	errMu sync.Mutex
	err   error
	done  chan struct{}
	once  sync.Once
}

// Join connects to url (ws://host/rtc/v1/ws), joins with token and returns once joined.
func Join(ctx context.Context, url, token string, opts ...Option) (*Client, error) {
	var o Options
	for _, f := range opts {
		f(&o)
	}
	c, err := join(ctx, url, token, o)
	var se *ServerError
	if o.FollowRedirect && errors.As(err, &se) && se.Code == rtcproto.CodeWrongNode && se.NodeURL != "" {
		return join(ctx, se.NodeURL, token, o)
	}
	return c, err
}

func join(ctx context.Context, url, token string, o Options) (*Client, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	api, err := newAPI(o)
	if err != nil {
		return nil, err
	}
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("rtcclient: dial %s: %w", url, err)
	}
	conn.SetReadLimit(4 << 20)
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{o: o, log: log, api: api, conn: conn, ctx: cctx, cancel: cancel,
		offers: make(chan rtcproto.SDP, 16), answers: make(chan rtcproto.SDP, 1),
		ownWaiters: map[string]chan rtcproto.Track{}, ownTracks: map[string]rtcproto.Track{},
		tracks: make(chan *RemoteTrack, 64), events: make(chan any, 1024), done: make(chan struct{})}
	if err := c.write(ctx, rtcproto.Join{Type: rtcproto.TypeJoin, Token: token}); err != nil {
		conn.CloseNow()
		cancel()
		return nil, err
	}
	// The first message is joined or error.
	_, b, err := conn.Read(ctx)
	if err != nil {
		conn.CloseNow()
		cancel()
		return nil, fmt.Errorf("rtcclient: waiting for joined: %w", err)
	}
	var env rtcproto.Envelope
	_ = json.Unmarshal(b, &env)
	switch env.Type {
	case rtcproto.TypeJoined:
		if err := json.Unmarshal(b, &c.info); err != nil {
			conn.CloseNow()
			cancel()
			return nil, err
		}
	case rtcproto.TypeError:
		var e rtcproto.Error
		_ = json.Unmarshal(b, &e)
		conn.CloseNow()
		cancel()
		return nil, &ServerError{Code: e.Code, Message: e.Message, NodeID: e.NodeID, NodeURL: e.NodeURL}
	default:
		conn.CloseNow()
		cancel()
		return nil, fmt.Errorf("rtcclient: unexpected first message %q", env.Type)
	}
	c.sub, err = api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		c.Close()
		return nil, err
	}
	c.sub.OnTrack(c.onTrack)
	go c.readLoop()
	go c.offerLoop()
	return c, nil
}

func newAPI(o Options) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := media.RegisterCodecs(m); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if o.MinimalInterceptors {
		if !o.NoNACK {
			if err := webrtc.ConfigureNack(m, ir); err != nil {
				return nil, err
			}
		}
		if err := webrtc.ConfigureRTCPReports(ir); err != nil {
			return nil, err
		}
	} else if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
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
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(s)), nil
}

// Info is the server's joined message.
func (c *Client) Info() rtcproto.Joined { return c.info }

// Tracks delivers remote tracks (unless WithOnTrack is set).
func (c *Client) Tracks() <-chan *RemoteTrack { return c.tracks }

// Events delivers participant and track events (*rtcproto.ParticipantEvent, *rtcproto.TrackEvent).
func (c *Client) Events() <-chan any { return c.events }

// Done is closed when the connection ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (a *ServerError when the server said why).
func (c *Client) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// SubscribeConnection is the peer connection carrying remote tracks.
func (c *Client) SubscribeConnection() *webrtc.PeerConnection { return c.sub }

func (c *Client) write(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.writeM.Lock()
	defer c.writeM.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.conn.Write(wctx, websocket.MessageText, b)
}

// SendRaw writes a raw text message (for testing the server's handling of bad input).
func (c *Client) SendRaw(ctx context.Context, b []byte) error {
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
		close(c.done)
		_ = c.sub.Close()
		c.pubMu.Lock()
		if c.pub != nil {
			_ = c.pub.Close()
		}
		c.pubMu.Unlock()
		c.conn.CloseNow()
	})
}

func (c *Client) readLoop() {
	for {
		_, b, err := c.conn.Read(c.ctx)
		if err != nil {
			c.finish(fmt.Errorf("rtcclient: connection closed: %w", err))
			return
		}
		var env rtcproto.Envelope
		if json.Unmarshal(b, &env) != nil {
			continue
		}
		switch env.Type {
		case rtcproto.TypeOffer:
			var m rtcproto.SDP
			if json.Unmarshal(b, &m) == nil {
				select {
				case c.offers <- m:
				case <-c.ctx.Done():
					return
				}
			}
		case rtcproto.TypeAnswer:
			var m rtcproto.SDP
			if json.Unmarshal(b, &m) == nil {
				select {
				case c.answers <- m:
				default:
					c.log.Warn("answer without a pending offer")
				}
			}
		case rtcproto.TypeCandidate:
			var m rtcproto.Candidate
			if json.Unmarshal(b, &m) == nil {
				ci := webrtc.ICECandidateInit{Candidate: m.Candidate.Candidate, SDPMid: m.Candidate.SDPMid, SDPMLineIndex: m.Candidate.SDPMLineIndex}
				if m.Target == rtcproto.TargetSubscriber {
					_ = c.sub.AddICECandidate(ci)
				} else if pc := c.pubPC(); pc != nil {
					_ = pc.AddICECandidate(ci)
				}
			}
		case rtcproto.TypeParticipantJoined, rtcproto.TypeParticipantLeft:
			var m rtcproto.ParticipantEvent
			if json.Unmarshal(b, &m) == nil {
				c.event(&m)
			}
		case rtcproto.TypeTrackPublished, rtcproto.TypeTrackUnpublished, rtcproto.TypeTrackMuted:
			var m rtcproto.TrackEvent
			if json.Unmarshal(b, &m) == nil {
				if m.Type == rtcproto.TypeTrackPublished && m.ConnectionID == c.info.ConnectionID {
					c.ownPublished(m.Track)
				}
				c.event(&m)
			}
		case rtcproto.TypeError:
			var m rtcproto.Error
			_ = json.Unmarshal(b, &m)
			c.finish(&ServerError{Code: m.Code, Message: m.Message, NodeID: m.NodeID, NodeURL: m.NodeURL})
			return
		}
	}
}

func (c *Client) event(v any) {
	select {
	case c.events <- v:
	default:
		c.log.Warn("event dropped: Events() is not read")
	}
}

func (c *Client) pubPC() *webrtc.PeerConnection {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	return c.pub
}

// offerLoop answers the server's offers on the subscribe connection, one at a time.
func (c *Client) offerLoop() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case m := <-c.offers:
			for _, t := range m.Tracks {
				c.subTracks.Store(t.Mid, t)
			}
			if err := c.answer(m.SDP); err != nil {
				c.finish(fmt.Errorf("rtcclient: answering the server's offer: %w", err))
				return
			}
		}
	}
}

func (c *Client) answer(sdp string) error {
	if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return err
	}
	ans, err := c.sub.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(c.sub)
	if err := c.sub.SetLocalDescription(ans); err != nil {
		return err
	}
	<-gathered
	return c.write(c.ctx, rtcproto.SDP{Type: rtcproto.TypeAnswer, SDP: c.sub.LocalDescription().SDP})
}

func (c *Client) onTrack(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	var mid string
	for _, tr := range c.sub.GetTransceivers() {
		if tr.Receiver() == r {
			mid = tr.Mid()
		}
	}
	v, _ := c.subTracks.Load(mid)
	info, _ := v.(rtcproto.SubscribedTrack)
	rt := &RemoteTrack{Info: info, Track: t, Receiver: r}
	if c.o.OnTrack != nil {
		c.o.OnTrack(rt)
		return
	}
	select {
	case c.tracks <- rt:
	case <-c.ctx.Done():
	}
}

func (c *Client) ownPublished(t rtcproto.Track) {
	c.ownMu.Lock()
	defer c.ownMu.Unlock()
	c.ownTracks[t.Mid] = t
	if w := c.ownWaiters[t.Mid]; w != nil {
		w <- t
		delete(c.ownWaiters, t.Mid)
	}
}

// Publish sends track as source (microphone, camera or screenshare) and returns once the
// server forwards it (the caller must already be writing media to track, or the server
// never sees it: start writing before or right after calling Publish from another goroutine).
func (c *Client) Publish(ctx context.Context, track webrtc.TrackLocal, source string) (*Publication, error) {
	c.pubMu.Lock()
	if c.pub == nil {
		pc, err := c.api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			c.pubMu.Unlock()
			return nil, err
		}
		c.pub = pc
	}
	pc := c.pub
	tr, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		c.pubMu.Unlock()
		return nil, err
	}
	if err := c.negotiatePubLocked(ctx, map[*webrtc.RTPTransceiver]string{tr: source}); err != nil {
		c.pubMu.Unlock()
		return nil, err
	}
	c.pubMu.Unlock()
	kf := make(chan struct{}, 1)
	p := &Publication{Mid: tr.Mid(), Source: source, Sender: tr.Sender(), KeyframeRequests: kf, kf: kf}
	go func() {
		for {
			pkts, _, err := p.Sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, pkt := range pkts {
				switch pkt.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					select {
					case kf <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	return p, nil
}

// WaitPublished waits until the server forwards p (its first RTP packet arrived) and fills TrackID.
func (c *Client) WaitPublished(ctx context.Context, p *Publication) error {
	c.ownMu.Lock()
	if t, ok := c.ownTracks[p.Mid]; ok {
		c.ownMu.Unlock()
		p.TrackID = t.TrackID
		return nil
	}
	w := make(chan rtcproto.Track, 1)
	c.ownWaiters[p.Mid] = w
	c.ownMu.Unlock()
	select {
	case t := <-w:
		p.TrackID = t.TrackID
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return ErrClosed
	}
}

func (c *Client) negotiatePubLocked(ctx context.Context, sources map[*webrtc.RTPTransceiver]string) error {
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(c.pub)
	if err := c.pub.SetLocalDescription(offer); err != nil {
		return err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	var src []rtcproto.TrackSource
	for tr, s := range sources {
		src = append(src, rtcproto.TrackSource{Mid: tr.Mid(), Source: s})
	}
	if err := c.write(ctx, rtcproto.SDP{Type: rtcproto.TypeOffer, SDP: c.pub.LocalDescription().SDP, Sources: src}); err != nil {
		return err
	}
	select {
	case a := <-c.answers:
		return c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP})
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		if err := c.Err(); err != nil {
			return err
		}
		return ErrClosed
	}
}

// Unpublish stops sending p and renegotiates.
func (c *Client) Unpublish(ctx context.Context, p *Publication) error {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	if err := c.pub.RemoveTrack(p.Sender); err != nil {
		return err
	}
	return c.negotiatePubLocked(ctx, nil)
}

// Mute tells the others a published track is (un)muted.
func (c *Client) Mute(ctx context.Context, trackID string, muted bool) error {
	return c.write(ctx, rtcproto.Mute{Type: rtcproto.TypeMute, TrackID: trackID, Muted: muted})
}

// Ping sends a ping (the pong is not surfaced).
func (c *Client) Ping(ctx context.Context) error {
	return c.write(ctx, rtcproto.Ping{Type: rtcproto.TypePing})
}

// Leave says goodbye and closes.
func (c *Client) Leave() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := c.write(ctx, rtcproto.Envelope{Type: rtcproto.TypeLeave})
	select {
	case <-c.done:
	case <-ctx.Done():
	}
	c.finish(ErrClosed)
	return err
}

// Close drops the connection without a goodbye.
func (c *Client) Close() error {
	c.finish(ErrClosed)
	return nil
}
