-- +goose Up
-- Static renditions (MP4/M4A files) of assets: one row per requested file, made by the
-- rendition worker once the asset is ready. claimed_ns is the lease of the worker making it
-- (NULL: nobody), renewed while ffmpeg runs; an expired lease is claimed again.
CREATE TABLE static_renditions (
    id TEXT PRIMARY KEY,
    asset_id TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    live_stream_id TEXT NOT NULL,
    resolution TEXT NOT NULL,
    legacy BOOLEAN NOT NULL,
    passthrough TEXT,
    status TEXT NOT NULL,
    claimed_ns BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    width BIGINT,
    height BIGINT,
    bitrate BIGINT,
    filesize BIGINT,
    error TEXT,
    created_ns BIGINT NOT NULL
);
CREATE INDEX static_renditions_asset ON static_renditions (asset_id, created_ns);
CREATE INDEX static_renditions_status ON static_renditions (status, created_ns);

-- +goose Down
DROP TABLE static_renditions;
