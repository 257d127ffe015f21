-- +goose Up
-- Lists walk (created_ns, id) newest first with a keyset bound: the indexes hold that order.
CREATE INDEX live_streams_env_keyset ON live_streams (environment_id, created_ns, id);
DROP INDEX live_streams_env_created;
CREATE INDEX live_streams_env_status_keyset ON live_streams (environment_id, status, created_ns, id);
CREATE INDEX assets_env_keyset ON assets (environment_id, created_ns, id);
DROP INDEX assets_env_created;
CREATE INDEX assets_stream_keyset ON assets (live_stream_id, created_ns, id);
DROP INDEX assets_stream;

-- +goose Down
CREATE INDEX assets_stream ON assets (live_stream_id, created_ns);
DROP INDEX assets_stream_keyset;
CREATE INDEX assets_env_created ON assets (environment_id, created_ns);
DROP INDEX assets_env_keyset;
DROP INDEX live_streams_env_status_keyset;
CREATE INDEX live_streams_env_created ON live_streams (environment_id, created_ns);
DROP INDEX live_streams_env_keyset;
