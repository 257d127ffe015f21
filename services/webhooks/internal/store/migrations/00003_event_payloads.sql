-- +goose Up
-- An event's webhook body is the same for every endpoint it goes to: it is stored once, and a
-- delivery written since has payload '' and takes its event's. Rows written before keep theirs.
CREATE TABLE event_payloads (
    event_id TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    created_ns BIGINT NOT NULL
);

-- +goose Down
DROP TABLE event_payloads;
