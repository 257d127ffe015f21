-- +goose Up
CREATE TABLE spaces (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    passthrough TEXT,
    active_session_id TEXT,
    created_ns BIGINT NOT NULL,
    updated_ns BIGINT NOT NULL
);
CREATE INDEX spaces_env_created ON spaces (environment_id, created_ns);
CREATE TABLE space_connections (
    space_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    joined_ns BIGINT NOT NULL,
    PRIMARY KEY (space_id, connection_id)
);
CREATE TABLE processed_events (
    id TEXT PRIMARY KEY,
    processed_ns BIGINT NOT NULL
);

-- +goose Down
DROP TABLE processed_events;
DROP TABLE space_connections;
DROP TABLE spaces;
