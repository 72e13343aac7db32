package push

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidToken is what Send wraps (with the provider's detail) when the
// provider answered that the token or endpoint is no longer valid. It is
// final: the caller unregisters the target.
var ErrInvalidToken = errors.New("push: token no longer valid")

// invalidToken wraps ErrInvalidToken with the provider's detail.
func invalidToken(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, fmt.Sprintf(format, args...))
}

// RetryError says to try again later: the provider was rate limiting,
// unavailable or unreachable, or the request timed out.
type RetryError struct {
	// Status is the HTTP status answered, 0 when there was no answer.
	Status int
	// After is the provider's Retry-After when it gave one, else 0.
	After time.Duration
	// Err is what went wrong.
	Err error
}

func (e *RetryError) Error() string {
	s := "push: try again later"
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.After > 0 {
		s += fmt.Sprintf(", after %s", e.After)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *RetryError) Unwrap() error { return e.Err }

// RefusedError is a final refusal that is not about the target: a payload
// the provider will not take, credentials it does not accept, a
// notification or endpoint the client will not send. The caller
// dead-letters the notification.
type RefusedError struct {
	// Status is the HTTP status answered, 0 when the client refused
	// before sending.
	Status int
	// Reason is the provider's reason, or the client's.
	Reason string
}

func (e *RefusedError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("push: refused (HTTP %d): %s", e.Status, e.Reason)
	}
	return "push: refused: " + e.Reason
}

// Outcome is what a caller does with a Send's result.
type Outcome int

const (
	// Delivered: the provider accepted the notification.
	Delivered Outcome = iota + 1
	// InvalidTarget: unregister the target (ErrInvalidToken).
	InvalidTarget
	// Retry: send again later (*RetryError, or an error no client returns
	// on its own, such as the caller's context ending).
	Retry
	// Refused: dead-letter the notification (*RefusedError).
	Refused
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case InvalidTarget:
		return "invalid_target"
	case Retry:
		return "retry"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Classify maps Send's result to an Outcome. An error that is none of the
// documented ones is Retry: nothing is unregistered or dropped on an error
// nobody classified.
func Classify(err error) Outcome {
	var refused *RefusedError
	switch {
	case err == nil:
		return Delivered
	case errors.Is(err, ErrInvalidToken):
		return InvalidTarget
	case errors.As(err, &refused):
		return Refused
	}
	return Retry
}

// RetryAfter is the wait a *RetryError in err's chain asks for, else 0.
func RetryAfter(err error) time.Duration {
	var r *RetryError
	if errors.As(err, &r) {
		return r.After
	}
	return 0
}
