-- +goose Up
CREATE TABLE live_streams (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL,
    stream_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    reconnect_window BIGINT NOT NULL,
    latency_mode TEXT NOT NULL,
    max_continuous_duration BIGINT NOT NULL,
    passthrough TEXT,
    new_asset_settings TEXT,
    test BOOLEAN NOT NULL,
    active_asset_id TEXT,
    created_ns BIGINT NOT NULL,
    updated_ns BIGINT NOT NULL
);
CREATE INDEX live_streams_env_created ON live_streams (environment_id, created_ns);
CREATE TABLE playback_ids (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL,
    live_stream_id TEXT,
    asset_id TEXT,
    policy TEXT NOT NULL,
    created_ns BIGINT NOT NULL
);
CREATE INDEX playback_ids_stream ON playback_ids (live_stream_id);
CREATE INDEX playback_ids_asset ON playback_ids (asset_id);
CREATE TABLE assets (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL,
    live_stream_id TEXT NOT NULL,
    status TEXT NOT NULL,
    duration_ms BIGINT,
    passthrough TEXT,
    created_ns BIGINT NOT NULL,
    updated_ns BIGINT NOT NULL
);
CREATE INDEX assets_env_created ON assets (environment_id, created_ns);
CREATE INDEX assets_stream ON assets (live_stream_id, created_ns);

-- +goose Down
DROP TABLE assets;
DROP TABLE playback_ids;
DROP TABLE live_streams;
