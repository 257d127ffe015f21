-- One database per service that keeps SQL state (DESIGN.md; the SFU keeps its state in Redis). Runs once, when the PostgreSQL data volume is new
-- (docker-entrypoint-initdb.d); each service migrates its own schema at start.
CREATE DATABASE keys;
CREATE DATABASE spaces;
CREATE DATABASE webhooks;
-- livestream is not in docker-compose.yml yet; its database exists so that adding the service
-- later needs no re-initialised volume.
CREATE DATABASE livestream;
