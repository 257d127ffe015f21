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

// claimScript: KEYS deleted, node, participants; ARGV nodeID, participantID, record.
// Order: tombstone, duplicate participant (anywhere), node assignment.
var claimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return {'deleted', ''} end
local cur = redis.call('HGET', KEYS[3], ARGV[2])
if cur then return {'duplicate', cjson.decode(cur)['node_id']} end
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then return {'wrong_node', owner} end
if not owner then redis.call('SET', KEYS[2], ARGV[1]) end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
return {'ok', ARGV[1]}
`)

// Claim records p as connected, atomically refusing a duplicate participant id, a deleted
// space and a space hosted by another node.
func (r *Registry) Claim(ctx context.Context, p Participant) error {
	rec, err := json.Marshal(p)
	if err != nil {
		return err
	}
	// The node's space list is advisory (cleanup reads it); add it first so a crash
	// right after the claim still leaves a trace to clean.
	if err := r.rdb.SAdd(ctx, r.nodeSpacesKey(p.NodeID), p.SpaceID).Err(); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	res, err := claimScript.Run(ctx, r.rdb,
		[]string{r.spaceKey(p.SpaceID, "deleted"), r.spaceKey(p.SpaceID, "node"), r.spaceKey(p.SpaceID, "participants")},
		p.NodeID, p.ParticipantID, string(rec)).StringSlice()
	if err != nil {
		return fmt.Errorf("registry claim: %w", err)
	}
	switch res[0] {
	case "ok":
		return nil
	case "deleted":
		return ErrSpaceDeleted
	case "duplicate":
		return &NodeError{Err: ErrDuplicate, NodeID: res[1]}
	case "wrong_node":
		return &NodeError{Err: ErrWrongNode, NodeID: res[1]}
	}
	return fmt.Errorf("registry claim: unexpected answer %q", res[0])
}

// releaseScript: KEYS participants, tracks, node; ARGV participantID, connectionID, nodeID.
// Removes the participant if it is still this connection, and the node assignment when the
// space has no participant left. Returns 1 when the participant was removed.
var releaseScript = redis.NewScript(`
local removed = 0
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cjson.decode(cur)['connection_id'] == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  removed = 1
end
redis.call('DEL', KEYS[2])
if redis.call('HLEN', KEYS[1]) == 0 and redis.call('GET', KEYS[3]) == ARGV[3] then
  redis.call('DEL', KEYS[3])
end
return removed
`)

// Release removes a connection's participant record and tracks. It reports whether the
// record was still there.
func (r *Registry) Release(ctx context.Context, p Participant) (bool, error) {
	n, err := releaseScript.Run(ctx, r.rdb,
		[]string{r.spaceKey(p.SpaceID, "participants"), r.tracksKey(p.SpaceID, p.ConnectionID), r.spaceKey(p.SpaceID, "node")},
		p.ParticipantID, p.ConnectionID, p.NodeID).Int()
	if err != nil {
		return false, fmt.Errorf("registry release: %w", err)
	}
	return n == 1, nil
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

// ForgetNode removes a cleaned-up node's heartbeat, URL and space list.
func (r *Registry) ForgetNode(ctx context.Context, node string) error {
	if err := r.rdb.ZRem(ctx, r.heartbeatsKey(), node).Err(); err != nil {
		return err
	}
	if err := r.rdb.HDel(ctx, r.urlsKey(), node).Err(); err != nil {
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
