// Package registry keeps the SFU's live state in Redis: which participants are connected to
// which space on which node with which tracks, which node hosts each space, node heartbeats,
// and deleted-space tombstones. Every key of one space shares the hash tag {space:ID}, so the
// join check is one atomic script even on Redis Cluster.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Errors returned by Claim.
var (
	ErrDuplicate    = errors.New("participant already connected to the space")
	ErrSpaceDeleted = errors.New("space was deleted")
	ErrWrongNode    = errors.New("space is hosted by another node")
)

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

// claimScript: KEYS deleted, node, participants, seq; ARGV nodeID, participantID, record, nowµs.
// Order: tombstone, duplicate participant (anywhere), node assignment.
var claimScript = redis.NewScript(bumpLua + `
if redis.call('EXISTS', KEYS[1]) == 1 then return {'deleted', ''} end
local cur = redis.call('HGET', KEYS[3], ARGV[2])
if cur then return {'duplicate', cjson.decode(cur)['node_id']} end
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then return {'wrong_node', owner} end
if not owner then redis.call('SET', KEYS[2], ARGV[1]) end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
local n = redis.call('HLEN', KEYS[3])
return {'ok', ARGV[1], tostring(n), bump(KEYS[4], ARGV[4])}
`)

func nowMicros(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// Claim records p as connected, atomically refusing a duplicate participant id, a deleted
// space and a space hosted by another node. The occupancy says whether p is the first.
func (r *Registry) Claim(ctx context.Context, p Participant) (Occupancy, error) {
	rec, err := json.Marshal(p)
	if err != nil {
		return Occupancy{}, err
	}
	// The node's space list is advisory (cleanup reads it); add it first so a crash
	// right after the claim still leaves a trace to clean.
	if err := r.rdb.SAdd(ctx, r.nodeSpacesKey(p.NodeID), p.SpaceID).Err(); err != nil {
		return Occupancy{}, fmt.Errorf("registry: %w", err)
	}
	res, err := claimScript.Run(ctx, r.rdb,
		[]string{r.spaceKey(p.SpaceID, "deleted"), r.spaceKey(p.SpaceID, "node"), r.spaceKey(p.SpaceID, "participants"), r.spaceKey(p.SpaceID, "seq")},
		p.NodeID, p.ParticipantID, string(rec), nowMicros(time.Now())).StringSlice()
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

// releaseScript: KEYS participants, tracks, node, seq, leaving; ARGV participantID,
// connectionID, nodeID, nowµs. Moves the participant (if it is still this connection) to the
// space's leaving hash together with the occupancy after it left, drops its tracks, and the
// node assignment when the space has no participant left. A connection already in the
// leaving hash answers what was recorded then, so a retry emits the same occupancy.
var releaseScript = redis.NewScript(bumpLua + `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not (cur and cjson.decode(cur)['connection_id'] == ARGV[2]) then
  redis.call('DEL', KEYS[2])
  local l = redis.call('HGET', KEYS[5], ARGV[2])
  if l then return {'leaving', l} end
  return {'gone', ''}
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
local n = redis.call('HLEN', KEYS[1])
if n == 0 and redis.call('GET', KEYS[3]) == ARGV[3] then
  redis.call('DEL', KEYS[3])
end
local rec = tostring(n) .. ':' .. bump(KEYS[4], ARGV[4]) .. ':' .. cur
redis.call('HSET', KEYS[5], ARGV[2], rec)
return {'leaving', rec}
`)

// Leave is a participant moved out of a space, waiting for its participant.left to be
// recorded (then call Left).
type Leave struct {
	Participant Participant
	Occupancy   Occupancy
}

func parseLeave(rec string) (Leave, error) {
	n, rest, ok1 := strings.Cut(rec, ":")
	seq, p, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return Leave{}, fmt.Errorf("registry: bad leaving record %q", rec)
	}
	occ, err := parseOccupancy(n, seq)
	if err != nil {
		return Leave{}, err
	}
	var part Participant
	if err := json.Unmarshal([]byte(p), &part); err != nil {
		return Leave{}, fmt.Errorf("registry: bad leaving record: %w", err)
	}
	return Leave{Participant: part, Occupancy: occ}, nil
}

// Release removes a connection's participant record and tracks, keeping the leave (with the
// occupancy after it) until Left is called. ok is false when the connection was neither
// connected nor leaving.
func (r *Registry) Release(ctx context.Context, p Participant) (l Leave, ok bool, err error) {
	res, err := releaseScript.Run(ctx, r.rdb,
		[]string{r.spaceKey(p.SpaceID, "participants"), r.tracksKey(p.SpaceID, p.ConnectionID), r.spaceKey(p.SpaceID, "node"),
			r.spaceKey(p.SpaceID, "seq"), r.spaceKey(p.SpaceID, "leaving")},
		p.ParticipantID, p.ConnectionID, p.NodeID, nowMicros(time.Now())).StringSlice()
	if err != nil {
		return Leave{}, false, fmt.Errorf("registry release: %w", err)
	}
	if res[0] != "leaving" {
		return Leave{}, false, nil
	}
	l, err = parseLeave(res[1])
	return l, err == nil, err
}

// Left forgets a leave whose participant.left is recorded.
func (r *Registry) Left(ctx context.Context, space, conn string) error {
	return r.rdb.HDel(ctx, r.spaceKey(space, "leaving"), conn).Err()
}

// NodeLeaves lists the leaves node started in space and did not finish (it died between
// the Redis change and recording the event).
func (r *Registry) NodeLeaves(ctx context.Context, node, space string) ([]Leave, error) {
	m, err := r.rdb.HGetAll(ctx, r.spaceKey(space, "leaving")).Result()
	if err != nil {
		return nil, err
	}
	var out []Leave
	for _, v := range m {
		l, err := parseLeave(v)
		if err == nil && l.Participant.NodeID == node {
			out = append(out, l)
		}
	}
	return out, nil
}

// vacateScript: KEYS participants, seq; ARGV nowµs. When nobody is connected, bumps the
// sequence and returns it; otherwise returns an empty string.
var vacateScript = redis.NewScript(bumpLua + `
if redis.call('HLEN', KEYS[1]) > 0 then return '' end
return bump(KEYS[2], ARGV[1])
`)

// Vacant reports whether space has no participant on any node and, if so, the occupancy
// (zero participants, a new sequence number) to announce.
func (r *Registry) Vacant(ctx context.Context, space string) (Occupancy, bool, error) {
	s, err := vacateScript.Run(ctx, r.rdb, []string{r.spaceKey(space, "participants"), r.spaceKey(space, "seq")},
		nowMicros(time.Now())).Text()
	if err != nil {
		return Occupancy{}, false, fmt.Errorf("registry vacant: %w", err)
	}
	if s == "" {
		return Occupancy{}, false, nil
	}
	occ, err := parseOccupancy("0", s)
	return occ, err == nil, err
}

// ForgetSpace drops space from node's list once the node hosts nobody there.
func (r *Registry) ForgetSpace(ctx context.Context, node, space string) error {
	return r.rdb.SRem(ctx, r.nodeSpacesKey(node), space).Err()
}

// SetTrack records (or updates) a published track of a connection.
func (r *Registry) SetTrack(ctx context.Context, space, conn string, t Track) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return r.rdb.HSet(ctx, r.tracksKey(space, conn), t.TrackID, string(b)).Err()
}

// RemoveTrack forgets a track.
func (r *Registry) RemoveTrack(ctx context.Context, space, conn, trackID string) error {
	return r.rdb.HDel(ctx, r.tracksKey(space, conn), trackID).Err()
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

// NodeSpaces lists the spaces a node has hosted participants in.
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
