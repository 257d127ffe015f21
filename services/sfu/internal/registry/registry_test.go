package registry_test

import (
	"context"
	"testing"

	"github.com/spacecast/spacecast/libs/testenv"
	"github.com/spacecast/spacecast/services/sfu/internal/registry"
)

// The join and leave scripts decide the occupancy after each change; the sequence only grows,
// also across a Redis that lost its data; a leave stays recorded until Left.
func TestOccupancyAndLeaves(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	r, err := registry.New(rdb, prefix)
	if err != nil {
		t.Fatal(err)
	}
	part := func(id, node string) registry.Participant {
		return registry.Participant{SpaceID: "sp", ParticipantID: id, ConnectionID: "c-" + id, NodeID: node, EnvironmentID: "env"}
	}
	var last int64
	next := func(what string, occ registry.Occupancy, wantN int) {
		t.Helper()
		if occ.Participants != wantN || occ.Seq <= last {
			t.Fatalf("%s: occupancy %+v, want %d participants and seq > %d", what, occ, wantN, last)
		}
		last = occ.Seq
	}
	a, b := part("a", "n1"), part("b", "n1")
	occ, err := r.Claim(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	next("first join", occ, 1)
	occ, err = r.Claim(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	next("second join", occ, 2)
	if _, vacant, err := r.Vacant(ctx, "sp"); err != nil || vacant {
		t.Fatalf("occupied space vacant=%v err=%v", vacant, err)
	}
	l, ok, err := r.Release(ctx, a)
	if err != nil || !ok || l.Participant.ConnectionID != a.ConnectionID {
		t.Fatalf("release = %+v %v %v", l, ok, err)
	}
	next("leave", l.Occupancy, 1)
	// A retry (the event was not recorded) answers the same leave, and the node's sweep sees it.
	l2, ok, err := r.Release(ctx, a)
	if err != nil || !ok || l2 != l {
		t.Fatalf("second release = %+v %v %v, want %+v", l2, ok, err, l)
	}
	if ls, err := r.NodeLeaves(ctx, "n1", "sp"); err != nil || len(ls) != 1 || ls[0] != l {
		t.Fatalf("unfinished leaves = %+v %v", ls, err)
	}
	if ls, _ := r.NodeLeaves(ctx, "n2", "sp"); len(ls) != 0 {
		t.Fatalf("another node's unfinished leaves = %+v", ls)
	}
	if err := r.Left(ctx, "sp", a.ConnectionID); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := r.Release(ctx, a); ok {
		t.Fatal("a finished leave was answered again")
	}
	l, ok, err = r.Release(ctx, b)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	next("last leave", l.Occupancy, 0)
	occ, vacant, err := r.Vacant(ctx, "sp")
	if err != nil || !vacant {
		t.Fatalf("empty space vacant=%v err=%v", vacant, err)
	}
	next("vacancy", occ, 0)
	// Redis loses everything (dev mode restart): the sequence still grows (clock floor).
	if err := rdb.Del(ctx, prefix+"{space:sp}:seq", prefix+"{space:sp}:participants", prefix+"{space:sp}:leaving").Err(); err != nil {
		t.Fatal(err)
	}
	occ, err = r.Claim(ctx, part("c", "n2"))
	if err != nil {
		t.Fatal(err)
	}
	next("join after Redis lost its data", occ, 1)
}
