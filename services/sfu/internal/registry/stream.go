package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// OccupancyMarker is what the JSON of an Event with Occupancy holds exactly once (its data
// built with zero participants and sequence): the script writes the occupancy it decides there.
const OccupancyMarker = `"space_participants":0,"space_seq":0`

// Event is a complete event envelope (JSON) that a script appends to its space's event stream
// together with the state change it describes. An event carrying the space's occupancy
// (participant.joined/left, space.vacated) has Occupancy set and OccupancyMarker in its JSON.
type Event struct {
	JSON      []byte
	Occupancy bool
}

// StreamEvent is one event read from a space's stream: its stream id and envelope.
type StreamEvent struct {
	ID   string
	JSON []byte
}

func (r *Registry) eventsKey(space string) string    { return r.spaceKey(space, "events") }
func (r *Registry) relayLockKey(space string) string { return r.spaceKey(space, "relay") }

// emitLua appends the events given from ARGV[i] on (a count, then flag, head and tail per
// event, see eventArgs) to the stream, writing the occupancy (n participants, seq; strings)
// between head and tail of the events whose flag is '1'.
const emitLua = `
local function emit(stream, i, n, seq)
  local count = tonumber(ARGV[i])
  for k = 0, count - 1 do
    local flag, head, tail = ARGV[i + 1 + 3 * k], ARGV[i + 2 + 3 * k], ARGV[i + 3 + 3 * k]
    local e = head
    if flag == '1' then
      e = head .. '"space_participants":' .. n .. ',"space_seq":' .. seq .. tail
    end
    redis.call('XADD', stream, '*', 'e', e)
  end
end
`

// eventArgs turns events into script arguments: their count, then per event its flag ("1":
// the occupancy goes between head and tail), head and tail.
func eventArgs(evs []Event) ([]any, error) {
	out := make([]any, 0, 1+3*len(evs))
	out = append(out, strconv.Itoa(len(evs)))
	for _, ev := range evs {
		if !ev.Occupancy {
			out = append(out, "0", string(ev.JSON), "")
			continue
		}
		if bytes.Count(ev.JSON, []byte(OccupancyMarker)) != 1 {
			return nil, ErrNoOccupancy
		}
		head, tail, _ := bytes.Cut(ev.JSON, []byte(OccupancyMarker))
		out = append(out, "1", string(head), string(tail))
	}
	return out, nil
}

// takeScript: KEYS events, relay lock; ARGV nodeID, lease ms, max. The stream's events are
// published by one relay at a time (per-space order): the holder of the lock. Answers
// {'busy'} when another node holds it, {'empty'} when there is nothing to publish (releasing
// the lock if this node held it), else takes or renews the lock and answers
// {'ok', id1, event1, id2, event2...} (the oldest max events).
var takeScript = redis.NewScript(`
local lock = redis.call('GET', KEYS[2])
if lock and lock ~= ARGV[1] then return {'busy'} end
if redis.call('XLEN', KEYS[1]) == 0 then
  if lock then redis.call('DEL', KEYS[2]) end
  return {'empty'}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
local out = {'ok'}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[3])) do
  table.insert(out, e[1])
  local f = e[2]
  for j = 1, #f, 2 do
    if f[j] == 'e' then table.insert(out, f[j + 1]) end
  end
end
return out
`)

// TakeEvents reads the oldest (at most max) unpublished events of space for node's relay,
// taking the space's relay lock for lease. held is false when another node's relay holds it
// (that relay publishes them); no events with held true means the stream is empty.
func (r *Registry) TakeEvents(ctx context.Context, space, node string, lease time.Duration, max int) (evs []StreamEvent, held bool, err error) {
	res, err := takeScript.Run(ctx, r.rdb, []string{r.eventsKey(space), r.relayLockKey(space)},
		node, lease.Milliseconds(), max).StringSlice()
	if err != nil {
		return nil, false, fmt.Errorf("registry take events: %w", err)
	}
	switch {
	case len(res) == 1 && res[0] == "busy":
		return nil, false, nil
	case len(res) == 1 && res[0] == "empty":
		return nil, true, nil
	case len(res) == 0 || res[0] != "ok" || len(res)%2 != 1:
		return nil, false, fmt.Errorf("registry take events: unexpected answer %q", res)
	}
	for i := 1; i < len(res); i += 2 {
		evs = append(evs, StreamEvent{ID: res[i], JSON: []byte(res[i+1])})
	}
	return evs, true, nil
}

// ackScript: KEYS events, relay lock; ARGV nodeID, ids... Deletes the published entries;
// an emptied stream is removed and its lock released (if this node held it). Returns how
// many entries are left.
var ackScript = redis.NewScript(`
redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
local n = redis.call('XLEN', KEYS[1])
if n == 0 then
  redis.call('DEL', KEYS[1])
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
end
return n
`)

// AckEvents deletes events the broker acknowledged and says how many are left in space's stream.
func (r *Registry) AckEvents(ctx context.Context, space, node string, ids []string) (left int64, err error) {
	if len(ids) == 0 {
		return r.PendingEvents(ctx, space)
	}
	args := make([]any, 0, 1+len(ids))
	args = append(args, node)
	for _, id := range ids {
		args = append(args, id)
	}
	left, err = ackScript.Run(ctx, r.rdb, []string{r.eventsKey(space), r.relayLockKey(space)}, args...).Int64()
	if err != nil {
		return 0, fmt.Errorf("registry ack events: %w", err)
	}
	return left, nil
}

// PendingEvents is how many events of space wait to be published.
func (r *Registry) PendingEvents(ctx context.Context, space string) (int64, error) {
	n, err := r.rdb.XLen(ctx, r.eventsKey(space)).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

var breakLockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// BreakRelayLock releases space's relay lock if the dead node holds it, so the node cleaning
// it up publishes the space's events at once instead of after the lease.
func (r *Registry) BreakRelayLock(ctx context.Context, space, deadNode string) error {
	return breakLockScript.Run(ctx, r.rdb, []string{r.relayLockKey(space)}, deadNode).Err()
}
