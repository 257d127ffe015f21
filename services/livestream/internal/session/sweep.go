package session

import (
	"context"
	"errors"
	"time"

	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// The orphan sweeper runs on every instance. An orphan is a stream whose recording has no
// owner and nothing that will end it: its lease holder died (kill -9, a lost node) without
// recording the disconnect or scheduling the reconnect timer. Two kinds are found:
//
//   - a lease whose expiry has passed without being released (the lease set is scored by
//     expiry): the stream is disconnected at the lease's last renewal;
//   - a stream with an active asset in SQL but neither a lease nor a reconnect timer in Redis
//     (Redis lost its data, e.g. the dev mode's in-memory Redis after its own crash): the stream
//     is disconnected at its last known time (the later of its playlist's last write and its
//     last SQL change).
//
// Either way the sweeper takes the stream's lease first (so two instances never both handle
// it, and a publisher coming back meanwhile is either before it or after it), then settles it
// exactly as after a clean disconnect: livestream.disconnected, and when reconnect_window has
// run from the disconnect, livestream.idle and asset.ready with the playlist ended.

func (m *Manager) sweepLoop(ctx context.Context) {
	t := time.NewTicker(m.o.SweepInterval)
	defer t.Stop()
	for {
		if err := m.Sweep(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("orphan sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep settles every orphan it finds once.
func (m *Manager) Sweep(ctx context.Context) error {
	expired, err := m.expiredLeases(ctx, 100)
	if err != nil {
		return err
	}
	var errs []error
	for _, z := range expired {
		id, _ := z.Member.(string)
		if err := m.claimOrphan(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	live, err := m.o.Store.ActiveRecordings(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	leased, err := m.leased(ctx, live)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for i, st := range live {
		if leased[i] {
			continue // leased (a live owner), or expired and handled above
		}
		if _, ok, err := m.timers.Due(ctx, timerMember(st.LiveStreamID, st.AssetID)); err != nil || ok {
			if err != nil {
				errs = append(errs, err)
			}
			continue // the reconnect window runs
		}
		if err := m.claimOrphan(ctx, st.LiveStreamID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// leased reports, for each of live, whether its stream has a lease record (live or expired),
// in one round trip per 500 streams.
func (m *Manager) leased(ctx context.Context, live []store.RecordingState) ([]bool, error) {
	out := make([]bool, len(live))
	const chunk = 500
	for from := 0; from < len(live); from += chunk {
		part := live[from:min(from+chunk, len(live))]
		ids := make([]string, len(part))
		for i, st := range part {
			ids[i] = st.LiveStreamID
		}
		// ZMSCORE answers nil for a missing member; go-redis reads that as 0, and no lease
		// expiry is 0 (scores are unix ms of a renewal plus the lock TTL).
		scores, err := m.o.Redis.ZMScore(ctx, m.leasesKey, ids...).Result()
		if err != nil {
			return nil, err
		}
		for i, sc := range scores {
			out[from+i] = sc != 0
		}
	}
	return out, nil
}

// claimOrphan takes stream id's lease if it is free and settles the stream.
func (m *Manager) claimOrphan(ctx context.Context, id string) error {
	if m.owner(id) != nil {
		return nil // owned here
	}
	token := settlerToken()
	ok, prev, err := m.acquire(ctx, id, token)
	if err != nil || !ok {
		return err // someone holds it: not an orphan (any more)
	}
	defer m.release(id, token)
	st, err := m.o.Store.GetRecordingState(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted: the lease record goes with the release
	}
	if err != nil {
		return err
	}
	if st.AssetID == "" {
		return nil
	}
	if !prev.IsZero() || st.DisconnectedAt == nil {
		m.log.Warn("orphaned live stream: settling it", "live_stream_id", id, "asset_id", st.AssetID,
			"lease_expired", prev, "disconnected_at", st.DisconnectedAt)
	}
	_, err = m.settle(ctx, id, prev, false)
	return err
}
