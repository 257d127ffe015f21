-- +goose Up
-- One broadcast per space (UNIQUE space_id): the space composed and sent to a live stream.
CREATE TABLE broadcasts (
    id TEXT PRIMARY KEY,
    space_id TEXT NOT NULL UNIQUE,
    environment_id TEXT NOT NULL,
    live_stream_id TEXT NOT NULL,
    status TEXT NOT NULL,
    layout TEXT NOT NULL,
    background TEXT,
    resolution TEXT NOT NULL,
    passthrough TEXT,
    created_ns BIGINT NOT NULL,
    updated_ns BIGINT NOT NULL
);
CREATE INDEX broadcasts_live_stream ON broadcasts (live_stream_id, status);
-- The live streams spaces-api has seen created (livestream.created on spacecast.livestreams)
-- and not deleted: a broadcast may only name one of its own environment. No stream key here.
CREATE TABLE known_live_streams (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE known_live_streams;
DROP INDEX broadcasts_live_stream;
DROP TABLE broadcasts;
