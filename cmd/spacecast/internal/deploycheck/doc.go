// Package deploycheck holds tests that check the deployment files against the code, since no
// Docker engine or Kubernetes cluster runs where the tests do: docker-compose.yml and the
// Kubernetes manifests set exactly the settings each binary reads, with values it accepts and
// addresses that point at services that exist; deploy/Dockerfile builds every service binary;
// the topic setup creates libs/events' topics; and the gateway configs, run in a real Caddy,
// send every public route of every deployed service to that service and nothing else.
package deploycheck
