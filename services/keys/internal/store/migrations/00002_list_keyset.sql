-- +goose Up
-- Lists walk (created_ns, id) newest first with a keyset bound: the indexes hold that order,
-- per environment and (for admin lists over every environment) overall.
CREATE INDEX access_tokens_env_keyset ON access_tokens (environment_id, created_ns, id);
DROP INDEX access_tokens_env;
CREATE INDEX access_tokens_keyset ON access_tokens (created_ns, id);
CREATE INDEX signing_keys_env_keyset ON signing_keys (environment_id, created_ns, id);
DROP INDEX signing_keys_env;
CREATE INDEX signing_keys_keyset ON signing_keys (created_ns, id);
CREATE INDEX environments_keyset ON environments (created_ns, id);

-- +goose Down
DROP INDEX environments_keyset;
DROP INDEX signing_keys_keyset;
CREATE INDEX signing_keys_env ON signing_keys (environment_id, created_ns);
DROP INDEX signing_keys_env_keyset;
DROP INDEX access_tokens_keyset;
CREATE INDEX access_tokens_env ON access_tokens (environment_id, created_ns);
DROP INDEX access_tokens_env_keyset;
