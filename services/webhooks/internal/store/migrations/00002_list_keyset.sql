-- +goose Up
-- Lists walk (created_ns, id) newest first with a keyset bound: the indexes hold that order.
CREATE INDEX endpoints_env_keyset ON endpoints (environment_id, created_ns, id);
DROP INDEX endpoints_env;
CREATE INDEX deliveries_endpoint_keyset ON deliveries (endpoint_id, created_ns, id);
DROP INDEX deliveries_endpoint;

-- +goose Down
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, created_ns);
DROP INDEX deliveries_endpoint_keyset;
CREATE INDEX endpoints_env ON endpoints (environment_id, created_ns);
DROP INDEX endpoints_env_keyset;
