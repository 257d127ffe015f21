-- +goose Up
-- Simulcast targets: RTMP(S) destinations a live stream's source is pushed to while it is active.
CREATE TABLE simulcast_targets (
    id TEXT PRIMARY KEY,
    live_stream_id TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    url TEXT NOT NULL,
    stream_key TEXT,
    passthrough TEXT,
    status TEXT NOT NULL,
    created_ns BIGINT NOT NULL
);
CREATE INDEX simulcast_targets_live_stream ON simulcast_targets (live_stream_id, created_ns);

-- +goose Down
DROP TABLE simulcast_targets;
