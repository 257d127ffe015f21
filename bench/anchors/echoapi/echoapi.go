// Package echoapi is the REST anchor of the benchmarks: the least a server can do for Spacecast's
// GET /video/v1/spaces/{id} and POST /video/v1/spaces on echo v4. It checks HTTP Basic
// credentials (SHA-256 of the secret compared in constant time, as Spacecast stores them),
// answers GET with the JSON it keeps in memory, and for POST writes one space row and one outbox
// row to SQLite in one transaction (the same engine, driver and pragmas Spacecast's dev mode
// uses). Nothing else: no metrics, no rate limit, no input checks beyond JSON decoding.
package echoapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Config names the database and the one accepted access token.
type Config struct {
	DBPath      string // SQLite file
	TokenID     string
	TokenSecret string
}

// Server is the anchor server.
type Server struct {
	db      *sql.DB
	writeMu sync.Mutex // one SQLite writer at a time, as in Spacecast
	tokenID string
	hash    [sha256.Size]byte

	mu     sync.RWMutex
	spaces map[string][]byte // id -> response body
}

const schema = `
CREATE TABLE IF NOT EXISTS spaces (id TEXT PRIMARY KEY, environment_id TEXT NOT NULL, type TEXT NOT NULL,
  status TEXT NOT NULL, passthrough TEXT, created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key TEXT NOT NULL,
  payload BLOB NOT NULL, created_ns INTEGER NOT NULL);`

// New opens the database and creates its two tables.
func New(ctx context.Context, c Config) (*Server, error) {
	if c.DBPath == "" || c.TokenID == "" || c.TokenSecret == "" {
		return nil, errors.New("echoapi: DBPath, TokenID and TokenSecret are required")
	}
	db, err := sql.Open("sqlite", c.DBPath+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, err
	}
	return &Server{db: db, tokenID: c.TokenID, hash: sha256.Sum256([]byte(c.TokenSecret)), spaces: map[string][]byte{}}, nil
}

// Close closes the database.
func (s *Server) Close() error { return s.db.Close() }

// Handler returns the echo instance serving the two routes.
func (s *Server) Handler() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	g := e.Group("/video/v1/spaces", s.basicAuth)
	g.POST("", s.create)
	g.GET("/:id", s.get)
	return e
}

func (s *Server) basicAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, secret, ok := c.Request().BasicAuth()
		h := sha256.Sum256([]byte(secret))
		if !ok || id != s.tokenID || subtle.ConstantTimeCompare(h[:], s.hash[:]) != 1 {
			return c.JSON(http.StatusUnauthorized, map[string]any{"error": map[string]any{"type": "unauthorized", "messages": []string{"invalid access token"}}})
		}
		return next(c)
	}
}

type space struct {
	ID          string  `json:"id"`
	CreatedAt   string  `json:"created_at"`
	Type        string  `json:"type"`
	Status      string  `json:"status"`
	Passthrough *string `json:"passthrough,omitempty"`
	Broadcasts  []any   `json:"broadcasts"`
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) create(c echo.Context) error {
	var req struct {
		Passthrough *string `json:"passthrough"`
	}
	if err := json.NewDecoder(c.Request().Body).Decode(&req); err != nil {
		return c.JSON(http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_parameters", "messages": []string{err.Error()}}})
	}
	now := time.Now()
	sp := space{ID: newID(), Type: "server", Status: "idle", Passthrough: req.Passthrough,
		CreatedAt: strconv.FormatInt(now.Unix(), 10), Broadcasts: []any{}}
	body, err := json.Marshal(map[string]any{"data": sp})
	if err != nil {
		return err
	}
	event, err := json.Marshal(map[string]any{"specversion": "1.0", "id": newID(), "type": "space.created", "subject": sp.ID, "data": sp})
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	s.writeMu.Lock()
	err = func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck
		if _, err := tx.ExecContext(ctx, `INSERT INTO spaces (id, environment_id, type, status, passthrough, created_ns, updated_ns)
			VALUES ($1, $2, $3, $4, $5, $6, $6)`, sp.ID, "env", sp.Type, sp.Status, req.Passthrough, now.UnixNano()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (topic, key, payload, created_ns) VALUES ($1, $2, $3, $4)`,
			"spacecast.spaces", sp.ID, event, now.UnixNano()); err != nil {
			return err
		}
		return tx.Commit()
	}()
	s.writeMu.Unlock()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.spaces[sp.ID] = body
	s.mu.Unlock()
	return c.JSONBlob(http.StatusCreated, body)
}

func (s *Server) get(c echo.Context) error {
	s.mu.RLock()
	body, ok := s.spaces[c.Param("id")]
	s.mu.RUnlock()
	if !ok {
		return c.JSON(http.StatusNotFound, map[string]any{"error": map[string]any{"type": "not_found", "messages": []string{"space not found"}}})
	}
	return c.JSONBlob(http.StatusOK, body)
}
