// Package registry keeps the SFU's live state in Redis: which participants are connected to
// which space on which node with which tracks, which node hosts each space, node heartbeats,
// and deleted-space tombstones. Every key of one space shares the hash tag {space:ID}, so the
// join check is one atomic script even on Redis Cluster. The scripts that change participants
// or tracks append the events describing the change to the space's event stream
// ({space:ID}:events) in the same script, so state and events never disagree (stream.go).
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Errors returned by Claim.
var (
	ErrDuplicate    = errors.New("participant already connected to the space")
	ErrSpaceDeleted = errors.New("space was deleted")
	ErrWrongNode    = errors.New("space is hosted by another node")
)

// ErrNoOccupancy is returned for an event with Occupancy given to a change that decides none
// (track changes), or one whose JSON lacks OccupancyMarker.
var ErrNoOccupancy = errors.New("registry: event occupancy cannot be filled in")

// NodeError says which node hosts the space (wraps ErrWrongNode) or holds the duplicate
// participant (wraps ErrDuplicate).
type NodeError struct {
	Err    error
	NodeID string
}

func (e *NodeError) Error() string { return fmt.Sprintf("%v (node %s)", e.Err, e.NodeID) }
func (e *NodeError) Unwrap() error { return e.Err }

// Participant is one connection's record.
type Participant struct {
	SpaceID       string `json:"space_id"`
	ParticipantID string `json:"participant_id"`
	ConnectionID  string `json:"connection_id"`
	Role          string `json:"role"`
	NodeID        string `json:"node_id"`
	EnvironmentID string `json:"environment_id"`
	JoinedAt      int64  `json:"joined_at"`
}

// Track is one published track's record.
type Track struct {
	TrackID string `json:"track_id"`
	Kind    string `json:"kind"`
	Source  string `json:"source"`
	Mid     string `json:"mid,omitempty"`
	Muted   bool   `json:"muted"`
}

// Registry talks to Redis under a key prefix.
type Registry struct {
	rdb    redis.UniversalClient
	prefix string
}

// New returns a registry using prefix for every key.
func New(rdb redis.UniversalClient, prefix string) (*Registry, error) {
	if rdb == nil {
		return nil, errors.New("registry: redis client is required")
	}
	return &Registry{rdb: rdb, prefix: prefix}, nil
}

func (r *Registry) spaceKey(space, part string) string {
	return r.prefix + "{space:" + space + "}:" + part
}
func (r *Registry) tracksKey(space, conn string) string {
	return r.prefix + "{space:" + space + "}:tracks:" + conn
}
func (r *Registry) nodeSpacesKey(node string) string { return r.prefix + "{node:" + node + "}:spaces" }
func (r *Registry) heartbeatsKey() string            { return r.prefix + "{nodes}:heartbeats" }
func (r *Registry) urlsKey() string                  { return r.prefix + "{nodes}:urls" }

// DeletedChannel is the pub/sub channel announcing deleted spaces to every node.
func (r *Registry) DeletedChannel() string { return r.prefix + "space-deleted" }

// Occupancy is what one change of a space's participants left behind: how many participants
// are connected (any node) and the space's sequence number, which grows with every change
// (never below the caller's clock in microseconds, so it keeps growing after Redis lost
// its data). Consumers keep the occupancy with the highest Seq.
type Occupancy struct {
	Participants int
	Seq          int64
}

// bumpLua raises the sequence key (KEYS[n]) past its last value and past ARGV now (µs), and
// returns it as a string (Lua numbers would lose digits when formatted).
const bumpLua = `
local function bump(key, now)
  local s = redis.call('INCR', key)
  if tonumber(now) > s then redis.call('SET', key, now) end
  return redis.call('GET', key)
end
`

// claimScript: KEYS deleted, node, participants, seq, events; ARGV nodeID, participantID,
// record, nowµs, then the participant.joined event (eventArgs). Order: tombstone, duplicate
// participant (anywhere), node assignment.
var claimScript = redis.NewScript(bumpLua + emitLua + `
if redis.call('EXISTS', KEYS[1]) == 1 then return {'deleted', ''} end
local cur = redis.call('HGET', KEYS[3], ARGV[2])
if cur then return {'duplicate', cjson.decode(cur)['node_id']} end
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then return {'wrong_node', owner} end
if not owner then redis.call('SET', KEYS[2], ARGV[1]) end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
local n = tostring(redis.call('HLEN', KEYS[3]))
local seq = bump(KEYS[4], ARGV[4])
emit(KEYS[5], 5, n, seq)
return {'ok', ARGV[1], n, seq}
`)

func nowMicros(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// Claim records p as connected and appends joined (its participant.joined, whose occupancy the
// script fills in) to the space's event stream, atomically refusing a duplicate participant
// id, a deleted space and a space hosted by another node. The occupancy says whether p is the
// first.
func (r *Registry) Claim(ctx context.Context, p Participant, joined Event) (Occupancy, error) {
	rec, err := json.Marshal(p)
	if err != nil {
		return Occupancy{}, err
	}
	evArgs, err := eventArgs([]Event{joined})
	if err != nil {
		return Occupancy{}, err
	}
	// The node's space list is advisory (cleanup and the event relay read it); add it first
	// so a crash right after the claim still leaves a trace to clean.
	if err := r.AddNodeSpace(ctx, p.NodeID, p.SpaceID); err != nil {
		return Occupancy{}, err
	}
	res, err := claimScript.Run(ctx, r.rdb,
		[]string{r.spaceKey(p.SpaceID, "deleted"), r.spaceKey(p.SpaceID, "node"), r.spaceKey(p.SpaceID, "participants"),
			r.spaceKey(p.SpaceID, "seq"), r.eventsKey(p.SpaceID)},
		append([]any{p.NodeID, p.ParticipantID, string(rec), nowMicros(time.Now())}, evArgs...)...).StringSlice()
	if err != nil {
		return Occupancy{}, fmt.Errorf("registry claim: %w", err)
	}
	switch res[0] {
	case "ok":
		return parseOccupancy(res[2], res[3])
	case "deleted":
		return Occupancy{}, ErrSpaceDeleted
	case "duplicate":
		return Occupancy{}, &NodeError{Err: ErrDuplicate, NodeID: res[1]}
	case "wrong_node":
		return Occupancy{}, &NodeError{Err: ErrWrongNode, NodeID: res[1]}
	}
	return Occupancy{}, fmt.Errorf("registry claim: unexpected answer %q", res[0])
}

func parseOccupancy(n, seq string) (Occupancy, error) {
	pn, err1 := strconv.Atoi(n)
	ps, err2 := strconv.ParseInt(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return Occupancy{}, fmt.Errorf("registry: bad occupancy %q %q", n, seq)
	}
	return Occupancy{Participants: pn, Seq: ps}, nil
}

// releaseScript: KEYS participants, tracks, node, seq, events; ARGV participantID,
// connectionID, nodeID, nowµs, then the events (eventArgs: the tracks' track.unpublished, the
// participant.left last). When the participant is still this connection, removes it and its
// tracks, the node assignment when the space has no participant left, and appends the events
// with the occupancy after it left; otherwise it only drops the connection's tracks and
// appends nothing.
var releaseScript = redis.NewScript(bumpLua + emitLua + `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
if not (cur and cjson.decode(cur)['connection_id'] == ARGV[2]) then return {'gone', '', ''} end
redis.call('HDEL', KEYS[1], ARGV[1])
local n = redis.call('HLEN', KEYS[1])
if n == 0 and redis.call('GET', KEYS[3]) == ARGV[3] then
  redis.call('DEL', KEYS[3])
end
n = tostring(n)
local seq = bump(KEYS[4], ARGV[4])
emit(KEYS[5], 5, n, seq)
return {'left', n, seq}
`)

// Release removes a connection's participant record and tracks and appends evs (its
// remaining tracks' track.unpublished, then its participant.left, whose occupancy the script
// fills in) to the space's event stream, in one step. ok is false (and nothing is appended)
// when the connection was not connected.
func (r *Registry) Release(ctx context.Context, p Participant, evs ...Event) (occ Occupancy, ok bool, err error) {
	evArgs, err := eventArgs(evs)
	if err != nil {
		return Occupancy{}, false, err
	}
	res, err := releaseScript.Run(ctx, r.rdb,
		[]string{r.spaceKey(p.SpaceID, "participants"), r.tracksKey(p.SpaceID, p.ConnectionID), r.spaceKey(p.SpaceID, "node"),
			r.spaceKey(p.SpaceID, "seq"), r.eventsKey(p.SpaceID)},
		append([]any{p.ParticipantID, p.ConnectionID, p.NodeID, nowMicros(time.Now())}, evArgs...)...).StringSlice()
	if err != nil {
		return Occupancy{}, false, fmt.Errorf("registry release: %w", err)
	}
	if res[0] != "left" {
		return Occupancy{}, false, nil
	}
	occ, err = parseOccupancy(res[1], res[2])
	return occ, err == nil, err
}

// vacateScript: KEYS participants, seq, events; ARGV nowµs, then the space.vacated event
// (eventArgs). When nobody is connected, bumps the sequence, appends the event with it and
// returns it; otherwise returns an empty string.
var vacateScript = redis.NewScript(bumpLua + emitLua + `
if redis.call('HLEN', KEYS[1]) > 0 then return '' end
local seq = bump(KEYS[2], ARGV[1])
emit(KEYS[3], 2, '0', seq)
return seq
`)

// Vacant reports whether space has no participant on any node and, if so, appends vacated
// (its space.vacated, whose occupancy the script fills in: zero participants, a new sequence
// number) to the space's event stream and returns that occupancy.
func (r *Registry) Vacant(ctx context.Context, space string, vacated Event) (Occupancy, bool, error) {
	evArgs, err := eventArgs([]Event{vacated})
	if err != nil {
		return Occupancy{}, false, err
	}
	s, err := vacateScript.Run(ctx, r.rdb, []string{r.spaceKey(space, "participants"), r.spaceKey(space, "seq"), r.eventsKey(space)},
		append([]any{nowMicros(time.Now())}, evArgs...)...).Text()
	if err != nil {
		return Occupancy{}, false, fmt.Errorf("registry vacant: %w", err)
	}
	if s == "" {
		return Occupancy{}, false, nil
	}
	occ, err := parseOccupancy("0", s)
	return occ, err == nil, err
}

// AddNodeSpace adds space to node's list: the spaces where node has participants or events
// its relay has not published yet (cleanup and the event relay read it).
func (r *Registry) AddNodeSpace(ctx context.Context, node, space string) error {
	if err := r.rdb.SAdd(ctx, r.nodeSpacesKey(node), space).Err(); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// ForgetSpace drops space from node's list once the node hosts nobody there and published
// the events it appended there.
func (r *Registry) ForgetSpace(ctx context.Context, node, space string) error {
	return r.rdb.SRem(ctx, r.nodeSpacesKey(node), space).Err()
}

// setTrackScript: KEYS tracks, events; ARGV trackID, record, then at most one event
// (eventArgs).
var setTrackScript = redis.NewScript(emitLua + `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
emit(KEYS[2], 3, '', '')
return 1
`)

// removeTrackScript: KEYS tracks, events; ARGV trackID, then at most one event (eventArgs).
// The event is appended only when the track was recorded.
var removeTrackScript = redis.NewScript(emitLua + `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
emit(KEYS[2], 2, '', '')
return 1
`)

// SetTrack records (or updates) a published track of a connection and appends evs (at most
// one: its track.published; none for a mute change) to the space's event stream, in one step.
func (r *Registry) SetTrack(ctx context.Context, space, conn string, t Track, evs ...Event) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := trackEvents(evs); err != nil {
		return err
	}
	evArgs, err := eventArgs(evs)
	if err != nil {
		return err
	}
	err = setTrackScript.Run(ctx, r.rdb, []string{r.tracksKey(space, conn), r.eventsKey(space)},
		append([]any{t.TrackID, string(b)}, evArgs...)...).Err()
	if err != nil {
		return fmt.Errorf("registry set track: %w", err)
	}
	return nil
}

// trackEvents checks the events of a track change: at most one, without occupancy.
func trackEvents(evs []Event) error {
	if len(evs) > 1 {
		return errors.New("registry: one event per track change")
	}
	if len(evs) == 1 && evs[0].Occupancy {
		return ErrNoOccupancy
	}
	return nil
}

// RemoveTrack forgets a track and, if it was recorded, appends evs (at most one: its
// track.unpublished) to the space's event stream, in one step. removed is false (and nothing
// is appended) when the track was not recorded (its participant was released meanwhile).
func (r *Registry) RemoveTrack(ctx context.Context, space, conn, trackID string, evs ...Event) (removed bool, err error) {
	if err := trackEvents(evs); err != nil {
		return false, err
	}
	evArgs, err := eventArgs(evs)
	if err != nil {
		return false, err
	}
	n, err := removeTrackScript.Run(ctx, r.rdb, []string{r.tracksKey(space, conn), r.eventsKey(space)},
		append([]any{trackID}, evArgs...)...).Int()
	if err != nil {
		return false, fmt.Errorf("registry remove track: %w", err)
	}
	return n == 1, nil
}

// ParticipantCount is how many participants the space has (any node).
func (r *Registry) ParticipantCount(ctx context.Context, space string) (int64, error) {
	return r.rdb.HLen(ctx, r.spaceKey(space, "participants")).Result()
}

// Participants lists the space's connected participants (any node).
func (r *Registry) Participants(ctx context.Context, space string) ([]Participant, error) {
	m, err := r.rdb.HGetAll(ctx, r.spaceKey(space, "participants")).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Participant, 0, len(m))
	for _, v := range m {
		var p Participant
		if json.Unmarshal([]byte(v), &p) == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// Tracks lists a connection's tracks.
func (r *Registry) Tracks(ctx context.Context, space, conn string) ([]Track, error) {
	m, err := r.rdb.HGetAll(ctx, r.tracksKey(space, conn)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Track, 0, len(m))
	for _, v := range m {
		var t Track
		if json.Unmarshal([]byte(v), &t) == nil {
			out = append(out, t)
		}
	}
	return out, nil
}

// SpaceNode returns the node hosting space ("" when none).
func (r *Registry) SpaceNode(ctx context.Context, space string) (string, error) {
	s, err := r.rdb.Get(ctx, r.spaceKey(space, "node")).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return s, err
}

// MarkDeleted writes the space's tombstone (kept a week so late joins are told why) and
// announces it to every node.
func (r *Registry) MarkDeleted(ctx context.Context, space string) error {
	if err := r.rdb.Set(ctx, r.spaceKey(space, "deleted"), "1", 7*24*time.Hour).Err(); err != nil {
		return err
	}
	return r.rdb.Publish(ctx, r.DeletedChannel(), space).Err()
}

// IsDeleted reports whether space has a tombstone.
func (r *Registry) IsDeleted(ctx context.Context, space string) (bool, error) {
	n, err := r.rdb.Exists(ctx, r.spaceKey(space, "deleted")).Result()
	return n == 1, err
}

// SubscribeDeleted returns the pub/sub subscription for deleted spaces.
func (r *Registry) SubscribeDeleted(ctx context.Context) *redis.PubSub {
	return r.rdb.Subscribe(ctx, r.DeletedChannel())
}

// Heartbeat records that node is alive now and where clients reach it.
func (r *Registry) Heartbeat(ctx context.Context, node, url string, now time.Time) error {
	if err := r.rdb.ZAdd(ctx, r.heartbeatsKey(), redis.Z{Score: float64(now.UnixMilli()), Member: node}).Err(); err != nil {
		return err
	}
	return r.rdb.HSet(ctx, r.urlsKey(), node, url).Err()
}

// NodeURL returns a node's signaling URL ("" if unknown).
func (r *Registry) NodeURL(ctx context.Context, node string) (string, error) {
	s, err := r.rdb.HGet(ctx, r.urlsKey(), node).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return s, err
}

// Alive reports whether node heartbeated within timeout.
func (r *Registry) Alive(ctx context.Context, node string, timeout time.Duration, now time.Time) (bool, error) {
	s, err := r.rdb.ZScore(ctx, r.heartbeatsKey(), node).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return now.UnixMilli()-int64(s) <= timeout.Milliseconds(), nil
}

// DeadNodes lists nodes whose last heartbeat is older than timeout.
func (r *Registry) DeadNodes(ctx context.Context, timeout time.Duration, now time.Time) ([]string, error) {
	max := strconv.FormatInt(now.Add(-timeout).UnixMilli(), 10)
	return r.rdb.ZRangeByScore(ctx, r.heartbeatsKey(), &redis.ZRangeBy{Min: "-inf", Max: "(" + max}).Result()
}

// LockCleanup takes the right to clean node up for ttl (one cleaner across replicas).
func (r *Registry) LockCleanup(ctx context.Context, node, cleaner string, ttl time.Duration) (bool, error) {
	return r.rdb.SetNX(ctx, r.prefix+"{node:"+node+"}:cleanup", cleaner, ttl).Result()
}

// NodeSpaces lists the spaces where a node has participants or events it has not published.
func (r *Registry) NodeSpaces(ctx context.Context, node string) ([]string, error) {
	return r.rdb.SMembers(ctx, r.nodeSpacesKey(node)).Result()
}

// Orphan is a participant left behind by a dead node, with its tracks.
type Orphan struct {
	Participant Participant
	Tracks      []Track
}

// NodeParticipants lists what node left in space.
func (r *Registry) NodeParticipants(ctx context.Context, node, space string) ([]Orphan, error) {
	ps, err := r.Participants(ctx, space)
	if err != nil {
		return nil, err
	}
	var out []Orphan
	for _, p := range ps {
		if p.NodeID != node {
			continue
		}
		ts, err := r.Tracks(ctx, space, p.ConnectionID)
		if err != nil {
			return nil, err
		}
		out = append(out, Orphan{Participant: p, Tracks: ts})
	}
	return out, nil
}

// ForgetNode removes a cleaned-up node's heartbeat, URLs and space list.
func (r *Registry) ForgetNode(ctx context.Context, node string) error {
	if err := r.rdb.ZRem(ctx, r.heartbeatsKey(), node).Err(); err != nil {
		return err
	}
	if err := r.rdb.HDel(ctx, r.urlsKey(), node).Err(); err != nil {
		return err
	}
	if err := r.rdb.HDel(ctx, r.internalURLsKey(), node).Err(); err != nil {
		return err
	}
	return r.rdb.Del(ctx, r.nodeSpacesKey(node)).Err()
}

// ReleaseNodeAssignment clears space's host if it is still node (after its participants went).
func (r *Registry) ReleaseNodeAssignment(ctx context.Context, node, space string) error {
	return releaseAssignScript.Run(ctx, r.rdb, []string{r.spaceKey(space, "node"), r.spaceKey(space, "participants")}, node).Err()
}

var releaseAssignScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  local ps = redis.call('HVALS', KEYS[2])
  for _, v in ipairs(ps) do
    if cjson.decode(v)['node_id'] == ARGV[1] then return 0 end
  end
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

// Ping checks Redis.
func (r *Registry) Ping(ctx context.Context) error { return r.rdb.Ping(ctx).Err() }
