-- +goose Up
-- Mux fields: a live stream's audio_only and meta; a recording's test flag and meta, taken from
-- the stream's new_asset_settings when the recording starts.
ALTER TABLE live_streams ADD COLUMN audio_only BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE live_streams ADD COLUMN meta TEXT;
ALTER TABLE assets ADD COLUMN test BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE assets ADD COLUMN meta TEXT;
-- What the ingest learnt of the media (JSON Media) and each connection's span (JSON
-- [RecordingTime]).
ALTER TABLE assets ADD COLUMN media TEXT;
ALTER TABLE assets ADD COLUMN recording_times TEXT;

-- +goose Down
ALTER TABLE assets DROP COLUMN recording_times;
ALTER TABLE assets DROP COLUMN media;
ALTER TABLE assets DROP COLUMN meta;
ALTER TABLE assets DROP COLUMN test;
ALTER TABLE live_streams DROP COLUMN meta;
ALTER TABLE live_streams DROP COLUMN audio_only;
