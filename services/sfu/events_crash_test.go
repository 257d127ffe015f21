package sfu_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/sfu"
	"github.com/spacecast/spacecast/services/sfu/spacesclient"
)

// envelopes returns every event read so far, in Kafka order.
func (r *rtcEvents) envelopes() []events.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Envelope(nil), r.list...)
}

// rtcData is the part of an SFU event's data this test checks.
type rtcData struct {
	SpaceID           string `json:"space_id"`
	ParticipantID     string `json:"participant_id"`
	ConnectionID      string `json:"connection_id"`
	NodeID            string `json:"node_id"`
	TrackID           string `json:"track_id"`
	SpaceParticipants *int   `json:"space_participants"`
	SpaceSeq          int64  `json:"space_seq"`
}

// An SFU process whose broker is unreachable takes joins and tracks (their events wait in
// Redis, written with each change) and is killed with SIGKILL: the node that cleans it up
// publishes what it left (every participant.joined and track.published) and the
// participant.left and track.unpublished of its participants, each event once (by id), in
// order per space, with the occupancy sequence growing and the last leave at 0 participants.
func TestKilledProcessEventsAreNotStranded(t *testing.T) {
	sfuBin, _ := binaries(t)
	w := newWorld(t)
	rtc := w.watchRTC()
	api := w.internalAPI("s3cret")
	addr := freeAddr(t)
	base := "ws://" + addr + strings.TrimSuffix(sfu.SpacesPath, "/v1")
	p := start(t, sfuBin, addr,
		"SPACECAST_REDIS_URL="+w.redisURL,
		"SPACECAST_SFU_REDIS_PREFIX="+w.prefix,
		"SPACECAST_KAFKA_BROKERS="+freeAddr(t), // nothing listens: no event leaves Redis
		"SPACECAST_INTERNAL_SECRET=s3cret",
		"SPACECAST_KEYS_URL="+api.URL,
		"SPACECAST_SPACES_URL="+api.URL,
		"SPACECAST_SFU_NODE_ID=doomed",
		"SPACECAST_SFU_PUBLIC_URL="+base+"/v1",
		"SPACECAST_SFU_ICE_BIND_IP=127.0.0.1",
		"SPACECAST_SFU_UDP_PORT=0",
		"SPACECAST_SFU_TCP_PORT=0",
		"SPACECAST_SFU_HEARTBEAT_INTERVAL=300ms",
		"SPACECAST_SFU_NODE_TIMEOUT=1500ms",
		"SPACECAST_SFU_CLEANUP_INTERVAL=300ms",
		"SPACECAST_SFU_CONSUMER_GROUP=sfu-doomed",
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type member struct{ space, pid, conn, track string }
	var members []member
	for _, m := range []struct {
		space, pid string
		publish    bool
	}{{"space-1", "alice", true}, {"space-1", "bob", false}, {"space-1", "carol", true}, {"space-2", "dave", true}} {
		c, err := spacesclient.Join(ctx, base, w.token(m.space, "publisher", m.pid), spacesclient.Options{LoopbackOnly: true})
		if err != nil {
			t.Fatalf("join %s: %v (logs: %s)", m.pid, err, p.logs)
		}
		defer c.Close()
		mem := member{space: m.space, pid: m.pid, conn: c.Info().ConnectionID}
		if m.publish {
			pub := publish(t, ctx, c, "microphone")
			mem.track = pub.pubs["microphone"].TID
		}
		members = append(members, mem)
	}
	// Every change is in Redis with its event before the kill: 3 joins + 2 tracks, 1 + 1.
	for sp, n := range map[string]int64{"space-1": 5, "space-2": 2} {
		testenv.Eventually(t, 10*time.Second, func() bool {
			return w.rdb.XLen(ctx, w.prefix+"{space:"+sp+"}:events").Val() == n
		}, "%s: %d events in its stream, want %d", sp, w.rdb.XLen(ctx, w.prefix+"{space:"+sp+"}:events").Val(), n)
	}
	if got := rtc.envelopes(); len(got) != 0 {
		t.Fatalf("%d events reached Kafka through a dead broker", len(got))
	}
	p.kill9()
	w.node("cleaner")

	// Expected per participant: joined, (published, unpublished,) left.
	wantTypes := map[string]int{}
	for _, m := range members {
		wantTypes[m.pid+" participant.joined"] = 1
		wantTypes[m.pid+" participant.left"] = 1
		if m.track != "" {
			wantTypes[m.pid+" track.published "+m.track] = 1
			wantTypes[m.pid+" track.unpublished "+m.track] = 1
		}
	}
	var unique []events.Envelope
	testenv.Eventually(t, 15*time.Second, func() bool {
		seen := map[string]bool{}
		unique = unique[:0]
		for _, e := range rtc.envelopes() {
			if !seen[e.ID] {
				seen[e.ID] = true
				unique = append(unique, e)
			}
		}
		return len(unique) >= len(wantTypes)
	}, "events of the killed node: %d of %d distinct events reached Kafka", len(unique), len(wantTypes))
	time.Sleep(500 * time.Millisecond) // anything extra would arrive now
	unique = unique[:0]
	seen := map[string]bool{}
	for _, e := range rtc.envelopes() {
		if !seen[e.ID] {
			seen[e.ID] = true
			unique = append(unique, e)
		}
	}

	got := map[string]int{}
	lastSeq := map[string]int64{}
	lastN := map[string]int{}
	joined := map[string]bool{}
	conns := map[string]string{}
	for _, m := range members {
		conns[m.pid] = m.conn
	}
	for _, e := range unique {
		var d rtcData
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		if e.Source != "spacecast/sfu" || e.Subject != d.SpaceID || e.Environment != envA {
			t.Errorf("event %s %s: source %q subject %q environment %q", e.ID, e.Type, e.Source, e.Subject, e.Environment)
		}
		if d.ConnectionID != conns[d.ParticipantID] {
			t.Errorf("%s of %s: connection %q, want %q", e.Type, d.ParticipantID, d.ConnectionID, conns[d.ParticipantID])
		}
		key := d.ParticipantID + " " + e.Type
		if d.TrackID != "" {
			key += " " + d.TrackID
		}
		got[key]++
		switch e.Type {
		case "participant.joined", "participant.left":
			if d.NodeID != "doomed" || d.SpaceParticipants == nil {
				t.Errorf("%s of %s: node %q, space_participants %v", e.Type, d.ParticipantID, d.NodeID, d.SpaceParticipants)
				continue
			}
			if d.SpaceSeq <= lastSeq[d.SpaceID] {
				t.Errorf("%s of %s: space_seq %d after %d (out of order)", e.Type, d.ParticipantID, d.SpaceSeq, lastSeq[d.SpaceID])
			}
			lastSeq[d.SpaceID], lastN[d.SpaceID] = d.SpaceSeq, *d.SpaceParticipants
			if e.Type == "participant.joined" {
				joined[d.ParticipantID] = true
			} else if !joined[d.ParticipantID] {
				t.Errorf("participant.left of %s before its participant.joined", d.ParticipantID)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(wantTypes) {
		t.Fatalf("distinct events\n%v\nwant\n%v", got, wantTypes)
	}
	for sp, n := range lastN {
		if n != 0 {
			t.Errorf("%s: last event says %d participants, want 0", sp, n)
		}
	}
	// Nothing is left behind in Redis for the dead node.
	testenv.Eventually(t, 5*time.Second, func() bool {
		return w.rdb.Exists(ctx, w.prefix+"{space:space-1}:events", w.prefix+"{space:space-2}:events", w.prefix+"{node:doomed}:spaces").Val() == 0
	}, "streams or the dead node's space list left in Redis")
}
