package sqldb

import "errors"

// ErrBadDSN is returned for a DSN that names no supported engine.
var ErrBadDSN = errors.New("unsupported SQL DSN: want postgres://... or sqlite:PATH")

// ErrTooManyStatements is returned by Stmt once its cache holds MaxStmts distinct queries:
// the statement cache is for the constant queries of the code, not for text built from data.
var ErrTooManyStatements = errors.New("sqldb: too many distinct prepared statements (queries passed to Stmt must be constants)")

// ErrGroupPanic is returned by Group.Do when its function panicked (the panic's value follows).
var ErrGroupPanic = errors.New("sqldb: group transaction function panicked")
