// Package deploycheck holds tests that check the deployment files (docker-compose.yml, the
// gateway config) against what the service binaries actually read and serve, since no Docker
// engine runs where the tests do.
package deploycheck
