package httpapi

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors a handler returns (wrapped freely); the error handler maps them to the
// API envelope in one place.
var (
	ErrInvalid      = errors.New("invalid_parameters")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrNotFound     = errors.New("not_found")
	ErrConflict     = errors.New("conflict")
	ErrRateLimited  = errors.New("rate_limited")
	ErrPrecondition = errors.New("precondition_failed")
	ErrTooLarge     = errors.New("payload_too_large")
	ErrTimeout      = errors.New("request_timeout")
)

// kinds maps each sentinel to its status; the sentinel's text is the envelope's type.
var kinds = []struct {
	err    error
	status int
}{
	{ErrInvalid, http.StatusBadRequest},
	{ErrUnauthorized, http.StatusUnauthorized},
	{ErrForbidden, http.StatusForbidden},
	{ErrNotFound, http.StatusNotFound},
	{ErrConflict, http.StatusConflict},
	{ErrRateLimited, http.StatusTooManyRequests},
	{ErrPrecondition, http.StatusPreconditionFailed},
	{ErrTooLarge, http.StatusRequestEntityTooLarge},
	{ErrTimeout, http.StatusRequestTimeout},
}

// apiError carries a kind and human-readable messages.
type apiError struct {
	kind     error
	messages []string
}

func (e *apiError) Error() string {
	if len(e.messages) == 0 {
		return e.kind.Error()
	}
	return e.kind.Error() + ": " + e.messages[0]
}
func (e *apiError) Unwrap() error { return e.kind }

// New returns an error of kind (one of the sentinels) with the given messages.
func New(kind error, messages ...string) error { return &apiError{kind: kind, messages: messages} }

// Invalid returns a 400 invalid_parameters error with a formatted message.
func Invalid(format string, args ...any) error { return New(ErrInvalid, fmt.Sprintf(format, args...)) }

// NotFound returns a 404 with msg.
func NotFound(msg string) error { return New(ErrNotFound, msg) }

// Conflict returns a 409 with msg.
func Conflict(msg string) error { return New(ErrConflict, msg) }

// Forbidden returns a 403 with msg.
func Forbidden(msg string) error { return New(ErrForbidden, msg) }

// Unauthorized returns a 401 with msg.
func Unauthorized(msg string) error { return New(ErrUnauthorized, msg) }

// classify returns the status, type and messages for err; ok is false for unknown errors.
func classify(err error) (status int, typ string, messages []string, ok bool) {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			var ae *apiError
			if errors.As(err, &ae) && len(ae.messages) > 0 {
				messages = ae.messages
			} else {
				messages = []string{defaultMessage(k.err)}
			}
			return k.status, k.err.Error(), messages, true
		}
	}
	return http.StatusInternalServerError, "internal", []string{"internal server error"}, false
}

func defaultMessage(kind error) string {
	switch kind {
	case ErrInvalid:
		return "invalid parameters"
	case ErrUnauthorized:
		return "missing or invalid credentials"
	case ErrForbidden:
		return "this access token lacks the permission for this request"
	case ErrNotFound:
		return "not found"
	case ErrConflict:
		return "the request conflicts with the resource's current state"
	case ErrRateLimited:
		return "too many requests"
	case ErrPrecondition:
		return "precondition failed"
	case ErrTooLarge:
		return "request body too large"
	case ErrTimeout:
		return "the request body did not arrive in time"
	}
	return kind.Error()
}
