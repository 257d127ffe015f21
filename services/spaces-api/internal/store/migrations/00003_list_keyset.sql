-- +goose Up
-- Lists walk (created_ns, id) newest first with a keyset bound: the index holds that order.
CREATE INDEX spaces_env_keyset ON spaces (environment_id, created_ns, id);
DROP INDEX spaces_env_created;

-- +goose Down
CREATE INDEX spaces_env_created ON spaces (environment_id, created_ns);
DROP INDEX spaces_env_keyset;
