-- +goose Up
-- Broadcasts sending a space to one of this service's live streams, as seen on spacecast.spaces
-- (space.broadcast.active / .idle / .deleted). Only an active row lets the SFU read the stream
-- key (GET /internal/v1/broadcasts/{id}/ingest).
CREATE TABLE broadcast_targets (
    broadcast_id TEXT PRIMARY KEY,
    space_id TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    live_stream_id TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    layout TEXT NOT NULL,
    resolution TEXT NOT NULL,
    background TEXT,
    updated_ns BIGINT NOT NULL
);

-- +goose Down
DROP TABLE broadcast_targets;
