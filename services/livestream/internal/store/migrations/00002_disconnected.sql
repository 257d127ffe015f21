-- +goose Up
-- When the current connection of the stream's recording ended (NULL while an encoder is
-- connected, or with no recording): reconnect_window runs from it.
ALTER TABLE live_streams ADD COLUMN disconnected_ns BIGINT;
CREATE INDEX live_streams_active_asset ON live_streams (active_asset_id);

-- +goose Down
DROP INDEX live_streams_active_asset;
ALTER TABLE live_streams DROP COLUMN disconnected_ns;
