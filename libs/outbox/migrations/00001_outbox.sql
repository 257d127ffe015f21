-- +goose Up
CREATE TABLE spacecast_outbox (
    seq AUTO_ID_PRIMARY_KEY,
    topic TEXT NOT NULL,
    msg_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX spacecast_outbox_pending ON spacecast_outbox (seq) WHERE sent_at IS NULL;

-- +goose Down
DROP TABLE spacecast_outbox;
