package simulcast

import (
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

var _ Writer = (*webrtc.TrackLocalStaticRTP)(nil)

// Writer is where a Forwarder sends the one layer it forwards; pion's
// *webrtc.TrackLocalStaticRTP satisfies it (it copies the packet, so the Forwarder reuses its
// own).
type Writer interface {
	WriteRTP(p *rtp.Packet) error
}

// ForwarderOptions configure a Forwarder.
type ForwarderOptions struct {
	// MimeType of the layers' codec: VP8 or H.264 (ErrUnsupportedCodec otherwise).
	MimeType string
	// ClockRate of the codec's RTP timestamps [90000].
	ClockRate uint32
	// Writer receives the forwarded packets (required).
	Writer Writer
	// RequestKeyframe asks the publisher for a keyframe on layer rid (send it a PLI for that
	// layer's SSRC). It is called after the Forwarder's lock is released, from the goroutine
	// calling SetTarget or Write, and must not block. Optional.
	RequestKeyframe func(rid string)
	// KeyframeRetry is how often RequestKeyframe is repeated while waiting for the target's
	// keyframe [500 ms].
	KeyframeRetry time.Duration
	// Target is the initial layer to forward ("" = none until SetTarget).
	Target string
	// Now is the clock [time.Now].
	Now func() time.Time
}

// ForwarderStats are the counters of a Forwarder.
type ForwarderStats struct {
	Packets          uint64 // packets written
	Bytes            uint64 // payload bytes written
	Dropped          uint64 // packets of the current layer dropped (older than the switch point)
	Switches         uint64 // changes from one forwarded layer to another
	KeyframeRequests uint64 // RequestKeyframe calls
}

// Forwarder receives the packets of every simulcast layer of one published track and writes one
// layer of them to one subscriber's track, as a single continuous stream: sequence numbers
// continue by one and timestamps by the elapsed time across layer switches, whatever the
// layers' SSRCs, numbering and timestamp bases. It switches to the target layer only at that
// layer's keyframe (asking for one with RequestKeyframe), and keeps forwarding the current
// layer until then. The publisher's RTP header extensions are removed: their ids were
// negotiated on the publisher's connection and mean nothing on the subscriber's.
//
// Goroutines: Write is called by the read goroutine of each layer's remote track (one per RID),
// SetTarget by the space owner; a Forwarder is safe for that concurrent use. One mutex guards
// its state and is held while the packet is written, so the subscriber's track receives packets
// in the order they were numbered.
type Forwarder struct {
	isKey     KeyframeFunc
	clockRate uint32
	w         Writer
	request   func(string)
	retry     time.Duration
	now       func() time.Time

	mu          sync.Mutex
	target      string
	current     string // "" = not forwarding
	started     bool   // a first packet was written: lastSeq/lastTS/lastAt are valid
	seqOff      uint16
	tsOff       uint32
	guardSeq    uint16 // input sequence number of the switch; earlier packets are dropped
	lastSeq     uint16 // highest sequence number written
	lastTS      uint32 // its timestamp
	lastAt      time.Time
	requestedAt time.Time // last keyframe request for the pending target
	stats       ForwarderStats
	out         rtp.Packet
}

// NewForwarder returns a Forwarder, or ErrBadOptions / ErrUnsupportedCodec.
func NewForwarder(o ForwarderOptions) (*Forwarder, error) {
	isKey := KeyframeDetector(o.MimeType)
	if isKey == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedCodec, o.MimeType)
	}
	if o.Writer == nil {
		return nil, fmt.Errorf("%w: no Writer", ErrBadOptions)
	}
	if o.KeyframeRetry < 0 {
		return nil, fmt.Errorf("%w: negative KeyframeRetry", ErrBadOptions)
	}
	if o.ClockRate == 0 {
		o.ClockRate = 90000
	}
	if o.KeyframeRetry == 0 {
		o.KeyframeRetry = 500 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RequestKeyframe == nil {
		o.RequestKeyframe = func(string) {}
	}
	return &Forwarder{
		isKey: isKey, clockRate: o.ClockRate, w: o.Writer, request: o.RequestKeyframe,
		retry: o.KeyframeRetry, now: o.Now, target: o.Target,
	}, nil
}

// SetTarget sets the layer to forward. Another layer than the current one is switched to at its
// next keyframe (requested now); "" stops forwarding at once (a later target resumes the same
// numbering).
func (f *Forwarder) SetTarget(rid string) {
	f.mu.Lock()
	f.target = rid
	req := false
	switch {
	case rid == "":
		f.current = ""
	case rid != f.current:
		req = true
		f.requestedAt = f.now()
		f.stats.KeyframeRequests++
	}
	f.mu.Unlock()
	if req {
		f.request(rid)
	}
}

// Restart is for a publisher whose layers now come from a new source (it reconnected: new
// SSRCs, sequence numbering and timestamp bases under the same RIDs): forwarding pauses until
// the target's next keyframe (requested now), from which the numbering continues as across a
// layer switch.
func (f *Forwarder) Restart() {
	f.mu.Lock()
	f.current = ""
	rid := f.target
	if rid != "" {
		f.requestedAt = f.now()
		f.stats.KeyframeRequests++
	}
	f.mu.Unlock()
	if rid != "" {
		f.request(rid)
	}
}

// Current is the layer being forwarded ("" before the target's first keyframe or when stopped).
func (f *Forwarder) Current() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

// Target is the layer last given to SetTarget.
func (f *Forwarder) Target() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.target
}

// Stats returns the counters.
func (f *Forwarder) Stats() ForwarderStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Write takes a packet of layer rid. pkt is only read (the same packet may be given to every
// subscriber's Forwarder). Packets of other layers than the one forwarded are ignored; the
// error is the Writer's.
func (f *Forwarder) Write(rid string, pkt *rtp.Packet) error {
	f.mu.Lock()
	var req string
	if f.target != "" && f.target != f.current {
		if rid == f.target && f.isKey(pkt.Payload) {
			f.switchTo(rid, pkt)
		} else if now := f.now(); now.Sub(f.requestedAt) >= f.retry {
			req = f.target
			f.requestedAt = now
			f.stats.KeyframeRequests++
		}
	}
	if rid != f.current || f.current == "" {
		f.mu.Unlock()
		if req != "" {
			f.request(req)
		}
		return nil
	}
	d := pkt.SequenceNumber - f.guardSeq
	if int16(d) < 0 {
		f.stats.Dropped++
		f.mu.Unlock()
		return nil
	}
	if d > 0x1000 && d < 0x8000 { // keep the guard a few thousand packets behind
		f.guardSeq = pkt.SequenceNumber - 0x1000
	}
	out := &f.out
	*out = *pkt
	out.SequenceNumber = pkt.SequenceNumber + f.seqOff
	out.Timestamp = pkt.Timestamp + f.tsOff
	out.Extension, out.ExtensionProfile, out.Extensions = false, 0, nil
	if !f.started || int16(out.SequenceNumber-f.lastSeq) > 0 {
		f.lastSeq, f.lastTS = out.SequenceNumber, out.Timestamp
	}
	f.started = true
	f.lastAt = f.now()
	f.stats.Packets++
	f.stats.Bytes += uint64(len(pkt.Payload))
	err := f.w.WriteRTP(out)
	*out = rtp.Packet{}
	f.mu.Unlock()
	if req != "" {
		f.request(req)
	}
	return err
}

// switchTo makes rid, whose keyframe starts at pkt, the forwarded layer. Called with mu held.
func (f *Forwarder) switchTo(rid string, pkt *rtp.Packet) {
	if f.started {
		f.seqOff = f.lastSeq + 1 - pkt.SequenceNumber
		elapsed := f.now().Sub(f.lastAt)
		ticks := uint32(1)
		if t := elapsed.Seconds() * float64(f.clockRate); t >= 1 && t < 1<<31 {
			ticks = uint32(t)
		}
		f.tsOff = f.lastTS + ticks - pkt.Timestamp
		if f.current != "" {
			f.stats.Switches++
		}
	}
	f.current = rid
	f.guardSeq = pkt.SequenceNumber
}
