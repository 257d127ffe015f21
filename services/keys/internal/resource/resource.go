// Package resource holds the shapes the keys service shows to others, apart from the rows it
// stores: the REST resources and the event payloads. Secrets (an access token's secret, a
// signing key's private half) exist only in the REST resource a create answers; the event
// payload types have no field that could hold one, and no row holds them at all.
package resource

// Environment is an environment as the REST API shows it.
type Environment struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"` // unix seconds
}

// AccessToken is an access token as the REST API shows it.
type AccessToken struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	EnvironmentID string   `json:"environment_id"`
	Permissions   []string `json:"permissions"`
	Admin         bool     `json:"admin,omitempty"`
	CreatedAt     string   `json:"created_at"`
	// Secret is set only in the answer to create.
	Secret string `json:"secret,omitempty"`
}

// SigningKey is a signing key as the REST API shows it.
type SigningKey struct {
	ID        string `json:"id"`
	CreatedAt string `json:"created_at"`
	// PrivateKey (base64 of a PEM) is set only in the answer to create.
	PrivateKey string `json:"private_key,omitempty"`
}

// EnvironmentEvent is the data of environment.created.
type EnvironmentEvent struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
}

// AccessTokenEvent is the data of access_token.created and access_token.revoked: never the
// secret nor its hash.
type AccessTokenEvent struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	EnvironmentID string   `json:"environment_id"`
	Permissions   []string `json:"permissions"`
	Admin         bool     `json:"admin"`
	CreatedAt     string   `json:"created_at"`
}

// SigningKeyEvent is the data of signing_key.created (id, created_at) and
// signing_key.deleted (id): never the private key.
type SigningKeyEvent struct {
	ID        string `json:"id"`
	CreatedAt string `json:"created_at,omitempty"`
}
