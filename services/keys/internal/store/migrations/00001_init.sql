-- +goose Up
CREATE TABLE environments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_ns BIGINT NOT NULL
);
CREATE TABLE access_tokens (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments(id),
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    permissions TEXT NOT NULL,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    created_ns BIGINT NOT NULL,
    revoked_ns BIGINT
);
CREATE INDEX access_tokens_env ON access_tokens (environment_id, created_ns);
CREATE TABLE signing_keys (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments(id),
    public_key_pem TEXT NOT NULL,
    created_ns BIGINT NOT NULL
);
CREATE INDEX signing_keys_env ON signing_keys (environment_id, created_ns);

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE access_tokens;
DROP TABLE environments;
