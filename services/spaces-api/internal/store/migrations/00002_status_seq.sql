-- +goose Up
-- The space status follows the SFU's occupancy (participants counted in its Redis registry,
-- carried by participant events with a sequence number): spaces-api keeps only the highest
-- sequence it applied, never a copy of the connections.
ALTER TABLE spaces ADD COLUMN status_seq BIGINT NOT NULL DEFAULT 0;
DROP TABLE space_connections;
CREATE INDEX spaces_status_id ON spaces (status, id);

-- +goose Down
DROP INDEX spaces_status_id;
CREATE TABLE space_connections (
    space_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    joined_ns BIGINT NOT NULL,
    PRIMARY KEY (space_id, connection_id)
);
ALTER TABLE spaces DROP COLUMN status_seq;
