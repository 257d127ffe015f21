-- +goose Up
-- The protocol of the stream's current encoder connection (rtmp or rtmps): active_ingest_protocol.
ALTER TABLE live_streams ADD COLUMN ingest_protocol TEXT;

-- +goose Down
ALTER TABLE live_streams DROP COLUMN ingest_protocol;
