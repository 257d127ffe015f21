// Package store keeps environments, access tokens and signing keys in SQL, writing each
// change's event to the outbox in the same transaction.
package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"io/fs"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spacecast/spacecast/libs/events"
	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/libs/outbox"
	"github.com/spacecast/spacecast/libs/sqldb"
	"github.com/spacecast/spacecast/services/keys/internal/resource"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Source is the CloudEvents source of every event this store writes.
const Source = "spacecast/keys"

// Environment is the stored row of an isolated set of resources (never serialized: the REST
// resources and event payloads are in package resource).
type Environment struct {
	ID        string
	Name      string
	CreatedAt string // unix seconds
}

// Event is the environment's event payload.
func (e Environment) Event() resource.EnvironmentEvent {
	return resource.EnvironmentEvent{ID: e.ID, Name: e.Name, CreatedAt: e.CreatedAt}
}

// AccessToken is the stored row of an access token: the hash of its secret, never the secret.
type AccessToken struct {
	ID            string
	Name          string
	EnvironmentID string
	Permissions   []string
	Admin         bool
	CreatedAt     string // unix seconds

	SecretHash []byte `json:"-"` // a row marshalled by mistake still leaks no hash
	Revoked    bool
}

// Event is the token's event payload (no secret, no hash).
func (t AccessToken) Event() resource.AccessTokenEvent {
	return resource.AccessTokenEvent{ID: t.ID, Name: t.Name, EnvironmentID: t.EnvironmentID, Permissions: t.Permissions, Admin: t.Admin, CreatedAt: t.CreatedAt}
}

// SigningKey is the stored row of a signing key: its public half only.
type SigningKey struct {
	ID            string
	CreatedAt     string // unix seconds
	EnvironmentID string
	PublicKeyPEM  string
}

// Store is the keys service's SQL store.
type Store struct {
	db *sqldb.DB
}

// Open migrates db and returns the store.
func Open(ctx context.Context, db *sqldb.DB) (*Store, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, sub, "keys"); err != nil {
		return nil, err
	}
	if err := outbox.Migrate(ctx, db); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

func secs(ns int64) string { return strconv.FormatInt(ns/int64(time.Second), 10) }

// withEvent runs fn and adds the event it returns, in one transaction.
func (s *Store) withEvent(ctx context.Context, fn func(tx *sql.Tx) (events.Envelope, error)) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		ev, err := fn(tx)
		if err != nil {
			return err
		}
		return outbox.Add(ctx, tx, events.TopicKeys, ev)
	})
}

// CreateEnvironment inserts env.
func (s *Store) CreateEnvironment(ctx context.Context, id, name string) (Environment, error) {
	now := time.Now().UnixNano()
	env := Environment{ID: id, Name: name, CreatedAt: secs(now)}
	err := s.withEvent(ctx, func(tx *sql.Tx) (events.Envelope, error) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO environments (id, name, created_ns) VALUES ($1, $2, $3)`, id, name, now); err != nil {
			if sqldb.IsUniqueViolation(err) {
				return events.Envelope{}, ErrExists
			}
			return events.Envelope{}, err
		}
		return events.New(Source, "environment.created", id, id, env.Event())
	})
	return env, err
}

// GetEnvironment returns one environment.
func (s *Store) GetEnvironment(ctx context.Context, id string) (Environment, error) {
	var env Environment
	var ns int64
	err := s.db.QueryRowContext(ctx, `SELECT id, name, created_ns FROM environments WHERE id = $1`, id).Scan(&env.ID, &env.Name, &ns)
	if errors.Is(err, sql.ErrNoRows) {
		return Environment{}, ErrNotFound
	}
	env.CreatedAt = secs(ns)
	return env, err
}

// ListEnvironments returns a page of environments, newest first.
func (s *Store) ListEnvironments(ctx context.Context, limit, offset int) ([]Environment, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, created_ns FROM environments ORDER BY created_ns DESC, id DESC LIMIT $1 OFFSET $2`, limit, offset)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Environment{}
	for rows.Next() {
		var env Environment
		var ns int64
		if err := rows.Scan(&env.ID, &env.Name, &ns); err != nil {
			return nil, err
		}
		env.CreatedAt = secs(ns)
		out = append(out, env)
	}
	return out, rows.Err()
}

// PageEnvironments returns a page of environments, newest first, and the cursor of the next
// page ("" on the last): keyset (created_ns, id), O(limit) at any depth with a cursor.
func (s *Store) PageEnvironments(ctx context.Context, pg httpapi.Page) ([]Environment, string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, created_ns FROM environments WHERE (created_ns, id) < ($1, $2)
		ORDER BY created_ns DESC, id DESC LIMIT $3 OFFSET $4`, pg.After.Time, pg.After.ID, pg.Fetch(), pg.Offset)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	out, keys := []Environment{}, []httpapi.Key{}
	for rows.Next() {
		var env Environment
		var ns int64
		if err := rows.Scan(&env.ID, &env.Name, &ns); err != nil {
			return nil, "", err
		}
		env.CreatedAt = secs(ns)
		out, keys = append(out, env), append(keys, httpapi.Key{Time: ns, ID: env.ID})
	}
	out, next := httpapi.PageOf(pg, out, keys)
	return out, next, rows.Err()
}

// CreateToken inserts a token with the hash of its secret.
func (s *Store) CreateToken(ctx context.Context, t AccessToken) (AccessToken, error) {
	now := time.Now().UnixNano()
	t.CreatedAt = secs(now)
	err := s.withEvent(ctx, func(tx *sql.Tx) (events.Envelope, error) {
		_, err := tx.ExecContext(ctx, `INSERT INTO access_tokens (id, environment_id, name, secret_hash, permissions, admin, created_ns)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, t.ID, t.EnvironmentID, t.Name, hex.EncodeToString(t.SecretHash),
			strings.Join(t.Permissions, ","), t.Admin, now)
		if err != nil {
			if sqldb.IsUniqueViolation(err) {
				return events.Envelope{}, ErrExists
			}
			return events.Envelope{}, err
		}
		return events.New(Source, "access_token.created", t.ID, t.EnvironmentID, t.Event())
	})
	return t, err
}

const tokenCols = `id, environment_id, name, secret_hash, permissions, admin, created_ns, revoked_ns`

func scanToken(sc interface{ Scan(...any) error }) (AccessToken, error) {
	var t AccessToken
	var hash, perms string
	var ns int64
	var revoked sql.NullInt64
	if err := sc.Scan(&t.ID, &t.EnvironmentID, &t.Name, &hash, &perms, &t.Admin, &ns, &revoked); err != nil {
		return AccessToken{}, err
	}
	t.SecretHash, _ = hex.DecodeString(hash)
	t.Permissions = []string{}
	if perms != "" {
		t.Permissions = strings.Split(perms, ",")
	}
	t.CreatedAt = secs(ns)
	t.Revoked = revoked.Valid
	return t, nil
}

// GetToken returns a token, revoked or not.
func (s *Store) GetToken(ctx context.Context, id string) (AccessToken, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM access_tokens WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return AccessToken{}, ErrNotFound
	}
	return t, err
}

// ListTokens returns a page of live tokens of env (all environments when env is ""), newest
// first, and the cursor of the next page ("" on the last).
func (s *Store) ListTokens(ctx context.Context, env string, pg httpapi.Page) ([]AccessToken, string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenCols+`, created_ns FROM access_tokens
		WHERE revoked_ns IS NULL AND ($1 = '' OR environment_id = $1) AND (created_ns, id) < ($2, $3)
		ORDER BY created_ns DESC, id DESC LIMIT $4 OFFSET $5`, env, pg.After.Time, pg.After.ID, pg.Fetch(), pg.Offset)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	out, keys := []AccessToken{}, []httpapi.Key{}
	for rows.Next() {
		var ns int64
		t, err := scanToken(httpapi.ScanKey(rows, &ns))
		if err != nil {
			return nil, "", err
		}
		out, keys = append(out, t), append(keys, httpapi.Key{Time: ns, ID: t.ID})
	}
	out, next := httpapi.PageOf(pg, out, keys)
	return out, next, rows.Err()
}

// RevokeToken marks a live token revoked.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	return s.withEvent(ctx, func(tx *sql.Tx) (events.Envelope, error) {
		t, err := scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM access_tokens WHERE id = $1 AND revoked_ns IS NULL`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return events.Envelope{}, ErrNotFound
		}
		if err != nil {
			return events.Envelope{}, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE access_tokens SET revoked_ns = $1 WHERE id = $2`, time.Now().UnixNano(), id); err != nil {
			return events.Envelope{}, err
		}
		return events.New(Source, "access_token.revoked", id, t.EnvironmentID, t.Event())
	})
}

// SetTokenSecret replaces a token's secret hash (bootstrap with an explicit secret).
func (s *Store) SetTokenSecret(ctx context.Context, id string, hash []byte) error {
	_, err := s.db.ExecContext(ctx, `UPDATE access_tokens SET secret_hash = $1, revoked_ns = NULL WHERE id = $2`, hex.EncodeToString(hash), id)
	return err
}

// CountAdmins counts live admin tokens.
func (s *Store) CountAdmins(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM access_tokens WHERE admin = $1 AND revoked_ns IS NULL`, true).Scan(&n)
	return n, err
}

// CreateSigningKey stores a key's public half.
func (s *Store) CreateSigningKey(ctx context.Context, k SigningKey) (SigningKey, error) {
	now := time.Now().UnixNano()
	k.CreatedAt = secs(now)
	err := s.withEvent(ctx, func(tx *sql.Tx) (events.Envelope, error) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (id, environment_id, public_key_pem, created_ns) VALUES ($1, $2, $3, $4)`,
			k.ID, k.EnvironmentID, k.PublicKeyPEM, now); err != nil {
			return events.Envelope{}, err
		}
		return events.New(Source, "signing_key.created", k.ID, k.EnvironmentID, resource.SigningKeyEvent{ID: k.ID, CreatedAt: k.CreatedAt})
	})
	return k, err
}

// GetSigningKey returns a key of env.
func (s *Store) GetSigningKey(ctx context.Context, env, id string) (SigningKey, error) {
	var k SigningKey
	var ns int64
	err := s.db.QueryRowContext(ctx, `SELECT id, environment_id, public_key_pem, created_ns FROM signing_keys WHERE id = $1 AND environment_id = $2`, id, env).
		Scan(&k.ID, &k.EnvironmentID, &k.PublicKeyPEM, &ns)
	if errors.Is(err, sql.ErrNoRows) {
		return SigningKey{}, ErrNotFound
	}
	k.CreatedAt = secs(ns)
	return k, err
}

// ListSigningKeys returns a page of keys of env (every environment when env is ""), newest
// first, and the cursor of the next page ("" on the last).
func (s *Store) ListSigningKeys(ctx context.Context, env string, pg httpapi.Page) ([]SigningKey, string, error) {
	out, keys, err := s.signingKeys(ctx, env, pg.After, pg.Fetch(), pg.Offset)
	if err != nil {
		return nil, "", err
	}
	out, next := httpapi.PageOf(pg, out, keys)
	return out, next, nil
}

// AllSigningKeys returns every key of env (every environment when env is ""), newest first.
func (s *Store) AllSigningKeys(ctx context.Context, env string) ([]SigningKey, error) {
	out, _, err := s.signingKeys(ctx, env, httpapi.Key{}, 1<<30, 0)
	return out, err
}

func (s *Store) signingKeys(ctx context.Context, env string, after httpapi.Key, limit, offset int) ([]SigningKey, []httpapi.Key, error) {
	if after == (httpapi.Key{}) {
		after.Time = math.MaxInt64
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, environment_id, public_key_pem, created_ns FROM signing_keys
		WHERE ($1 = '' OR environment_id = $1) AND (created_ns, id) < ($2, $3)
		ORDER BY created_ns DESC, id DESC LIMIT $4 OFFSET $5`, env, after.Time, after.ID, limit, offset)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	out, keys := []SigningKey{}, []httpapi.Key{}
	for rows.Next() {
		var k SigningKey
		var ns int64
		if err := rows.Scan(&k.ID, &k.EnvironmentID, &k.PublicKeyPEM, &ns); err != nil {
			return nil, nil, err
		}
		k.CreatedAt = secs(ns)
		out, keys = append(out, k), append(keys, httpapi.Key{Time: ns, ID: k.ID})
	}
	return out, keys, rows.Err()
}

// DeleteSigningKey removes a key of env.
func (s *Store) DeleteSigningKey(ctx context.Context, env, id string) error {
	return s.withEvent(ctx, func(tx *sql.Tx) (events.Envelope, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM signing_keys WHERE id = $1 AND environment_id = $2`, id, env)
		if err != nil {
			return events.Envelope{}, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return events.Envelope{}, ErrNotFound
		}
		return events.New(Source, "signing_key.deleted", id, env, resource.SigningKeyEvent{ID: id})
	})
}

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }
