-- +goose Up
CREATE TABLE endpoints (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until BIGINT,
    rate_limit INTEGER NOT NULL DEFAULT 0,
    failing_since BIGINT,
    disabled_reason TEXT,
    created_ns BIGINT NOT NULL,
    updated_ns BIGINT NOT NULL
);
CREATE INDEX endpoints_env ON endpoints (environment_id, created_ns);
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ns BIGINT,
    created_ns BIGINT NOT NULL,
    updated_ns BIGINT NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, created_ns);
CREATE INDEX deliveries_pending ON deliveries (status, next_attempt_ns);
CREATE TABLE attempts (
    seq AUTO_ID_PRIMARY_KEY,
    delivery_id TEXT NOT NULL,
    at_ns BIGINT NOT NULL,
    status_code INTEGER NOT NULL,
    latency_ms INTEGER NOT NULL,
    error TEXT,
    response_body TEXT
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, seq);

-- +goose Down
DROP TABLE attempts;
DROP TABLE deliveries;
DROP TABLE endpoints;
