package session

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/flv"
	"github.com/spacecast/spacecast/services/livestream/internal/hls"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// State is where a live stream's connection is, as its owner sees it.
type State int

// The states of an owner, in order.
const (
	Connected    State = iota // an encoder holds the lease; no media yet
	Recording                 // media arrives
	Active                    // the first segment is listed: the stream plays
	Disconnected              // the encoder left (or was dropped): the owner is done
)

func (s State) String() string {
	return [...]string{"connected", "recording", "active", "disconnected"}[s]
}

type cmdKind int

const (
	cmdMedia   cmdKind = iota // the connection's first media arrived
	cmdSegment                // the first segment is listed
	cmdGone                   // the encoder left (or the instance stops)
	cmdEnd                    // end the recording now: complete, disable, delete
)

type command struct {
	kind  cmdKind
	reply chan error // optional
}

var errOwnerGone = errors.New("session: the stream's owner has stopped")

// owner is the one goroutine that runs a live stream's ingest on this instance, for as long as
// it holds the stream's lease. Only run touches state and the store transitions; the
// publisher's goroutine writes packets into seg (which serializes them and refuses them once
// stopped) and records when media last arrived.
type owner struct {
	m         *Manager
	log       *slog.Logger
	stream    store.LiveStream
	assetID   string
	token     string
	kick      func()
	onSegment func(hls.SegmentInfo)
	seg       *hls.Segmenter
	cmds      chan command
	done      chan struct{}

	lastMedia atomic.Int64 // unix ns; written by the publisher's goroutine
	firstSeg  atomic.Bool

	state State // run's own
}

// call sends c to the owner and waits until it is handled. It returns errOwnerGone if the owner
// has stopped (before or instead of handling it).
func (o *owner) call(ctx context.Context, kind cmdKind) error {
	c := command{kind: kind, reply: make(chan error, 1)}
	select {
	case o.cmds <- c:
	case <-o.done:
		return errOwnerGone
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-c.reply:
		return err
	case <-o.done:
		select {
		case err := <-c.reply:
			return err
		default:
			return errOwnerGone
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// post sends c without waiting for it to be handled. It never blocks: the segmenter's
// callback also runs on the owner's own goroutine (when it writes the last segment).
func (o *owner) post(kind cmdKind) {
	c := command{kind: kind}
	select {
	case o.cmds <- c:
	case <-o.done:
	default:
		go func() {
			select {
			case o.cmds <- c:
			case <-o.done:
			}
		}()
	}
}

func (o *owner) segmentWritten(si hls.SegmentInfo) {
	if !o.firstSeg.Swap(true) {
		o.post(cmdSegment)
	}
	if o.onSegment != nil {
		o.onSegment(si)
	}
}

func (o *owner) doKick() {
	if o.kick != nil {
		o.kick()
	}
}

func (o *owner) run() {
	defer close(o.done)
	defer o.m.unregister(o)
	ttl := o.m.o.LockTTL
	renew := time.NewTicker(ttl / 3)
	defer renew.Stop()
	maxDur := time.NewTimer(time.Duration(o.stream.MaxContinuousDuration) * time.Second)
	defer maxDur.Stop()
	renewed := time.Now()
	ctx := context.Background()
	for {
		select {
		case c := <-o.cmds:
			stop, err := o.handle(ctx, c.kind)
			if c.reply != nil {
				c.reply <- err
			}
			if stop {
				return
			}
		case <-maxDur.C:
			o.log.Info("max_continuous_duration reached")
			o.end(ctx)
			return
		case now := <-renew.C:
			if now.Sub(time.Unix(0, o.lastMedia.Load())) > ttl {
				o.log.Warn("publisher silent for the lease lifetime: dropping it")
				o.disconnect(ctx)
				return
			}
			rctx, cancel := context.WithTimeout(ctx, ttl/3)
			ok, err := o.m.renew(rctx, o.stream.ID, o.token)
			cancel()
			if err == nil && !ok && o.reacquire(ctx) {
				ok = true // Redis lost the lease record (a restart without persistence): taken again
			}
			switch {
			case err == nil && ok:
				renewed = now
				continue
			case err != nil && now.Sub(renewed) < ttl*2/3:
				o.log.Warn("renewing the stream lease", "err", err)
				continue
			}
			// The lease is lost (taken over, or not renewed in time): someone else may write
			// the recording now, so stop at once without writing or recording anything.
			o.log.Warn("stream lease lost: the publisher is dropped", "err", err)
			o.seg.Abort()
			o.doKick()
			return
		}
	}
}

// reacquire takes the lease again after a renewal found it gone, if nobody else holds it and
// nobody settled the stream meanwhile (SQL still shows this connection's recording as
// connected); otherwise it lets go and reports false.
func (o *owner) reacquire(ctx context.Context) bool {
	ok, _, err := o.m.acquire(ctx, o.stream.ID, o.token)
	if err != nil || !ok {
		return false
	}
	st, err := o.m.o.Store.GetRecordingState(ctx, o.stream.ID)
	if err != nil || st.AssetID != o.assetID || st.DisconnectedAt != nil {
		o.m.release(o.stream.ID, o.token)
		return false
	}
	o.log.Warn("stream lease record was gone: taken again")
	return true
}

// handle runs one command; stop means the owner is done.
func (o *owner) handle(ctx context.Context, k cmdKind) (stop bool, err error) {
	id := o.stream.ID
	switch k {
	case cmdMedia:
		if o.state == Connected {
			o.state = Recording
			if _, err := o.m.o.Store.Recording(ctx, id); err != nil {
				o.log.Error("recording the first media", "err", err)
				return false, err
			}
			o.m.o.Relay.Notify()
		}
	case cmdSegment:
		if o.state < Active {
			o.state = Active
			if _, err := o.m.o.Store.Activate(ctx, id); err != nil && !errors.Is(err, store.ErrDisabled) {
				o.log.Error("marking the stream active", "err", err)
				return false, err
			}
			o.m.o.Relay.Notify()
		}
	case cmdGone:
		o.disconnect(ctx)
		return true, nil
	case cmdEnd:
		return true, o.end(ctx)
	}
	return false, nil
}

// lastSegment: when the first segment was only written by the final flush, the stream was
// playable: it becomes active before it disconnects. The owner is then Disconnected.
func (o *owner) lastSegment(ctx context.Context) {
	if o.firstSeg.Load() && o.state < Active {
		if o.state == Connected { // its first-media command is still queued
			_, _ = o.handle(ctx, cmdMedia)
		}
		_, _ = o.handle(ctx, cmdSegment)
	}
	o.state = Disconnected
}

// disconnect: the encoder left. The open segment is written, the disconnect recorded, the
// reconnect timer scheduled, and the lease released for whoever comes next.
func (o *owner) disconnect(ctx context.Context) {
	o.doKick()
	if err := o.seg.Stop(); err != nil {
		o.log.Error("writing the last segment", "err", err)
	}
	o.lastSegment(ctx)
	o.m.disconnected(ctx, o.stream.ID, o.assetID, time.Now(), o.stream.ReconnectWindow)
	o.m.release(o.stream.ID, o.token)
	o.log.Info("publisher gone: reconnect window runs", "reconnect_window", o.stream.ReconnectWindow)
}

// end: the recording ends now. The publisher is kicked and the segmenter finished (it refuses
// any later packet) before the asset becomes ready, so nothing is written after ready.
func (o *owner) end(ctx context.Context) error {
	o.doKick()
	dur, err := o.seg.Finish()
	if err != nil {
		o.log.Error("closing the recording", "err", err)
	}
	o.lastSegment(ctx)
	id := o.stream.ID
	defer o.m.release(id, o.token)
	if _, err := o.m.o.Store.Disconnect(ctx, id, o.assetID, time.Now()); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if _, err := o.m.o.Store.Finish(ctx, id, o.assetID, dur); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	o.m.o.Relay.Notify()
	if _, err := o.m.timers.Cancel(ctx, timerMember(id, o.assetID)); err != nil {
		return err
	}
	o.log.Info("recording ended", "duration", dur)
	return nil
}

// WritePacket adds a packet of the connection to the recording. After the recording ended
// (or the owner gave it up) it returns hls.ErrFinished.
func (s *Session) WritePacket(p flv.Packet) error {
	s.o.lastMedia.Store(time.Now().UnixNano())
	if !s.media {
		s.media = true
		s.o.post(cmdMedia)
	}
	return s.o.seg.WritePacket(p)
}

// End tells the owner that the encoder left, and waits until that is recorded.
func (s *Session) End(ctx context.Context) error {
	if err := s.o.call(ctx, cmdGone); err != nil && !errors.Is(err, errOwnerGone) {
		return err
	}
	return nil
}
