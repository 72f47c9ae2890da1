// Package apierror is the one vocabulary of errors that services return to
// callers. Domain code builds an *Error; the gRPC edge (package grpcserver)
// turns it into a status with an ErrorInfo reason. Any other error reaching
// the edge becomes a generic Internal status, its text kept for the log.
package apierror

import (
	"errors"
	"fmt"
)

// Kind is the class of an error, mirroring the gRPC codes that callers act on.
type Kind int

// The kinds of error a service may return.
const (
	Internal Kind = iota
	InvalidArgument
	NotFound
	AlreadyExists
	PermissionDenied
	Unauthenticated
	FailedPrecondition
	ResourceExhausted
	Unavailable
	Unimplemented
	Aborted
)

// Domain is the ErrorInfo domain of every mailroom error.
const Domain = "mailroom.dev"

// ReasonMessageTooLarge is the ErrorInfo reason of a payload over a size
// limit; the gateway answers it with HTTP 413.
const ReasonMessageTooLarge = "MESSAGE_TOO_LARGE"

// Error is an error meant to be shown to the caller. Message must never hold
// a secret or mail content.
type Error struct {
	Kind Kind
	// Reason is an UPPER_SNAKE_CASE identifier of the error, stable for machines.
	Reason string
	// Message is a sentence for people.
	Message string
	// Field names the request field at fault, for InvalidArgument.
	Field string
	// Metadata adds machine-readable detail to the ErrorInfo.
	Metadata map[string]string
	// Err is the underlying error, kept for the log and never shown.
	Err error
}

func (e *Error) Error() string {
	s := e.Message
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// KindOf returns the kind of err, Internal when err is not an *Error.
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return Internal
}

func newf(kind Kind, reason, format string, args ...any) *Error {
	return &Error{Kind: kind, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Invalid reports a bad value in the request field named by field.
func Invalid(field, format string, args ...any) *Error {
	e := newf(InvalidArgument, "INVALID_ARGUMENT", format, args...)
	e.Field = field
	return e
}

// NotFoundf reports a missing resource.
func NotFoundf(format string, args ...any) *Error {
	return newf(NotFound, "NOT_FOUND", format, args...)
}

// AlreadyExistsf reports a resource that exists already.
func AlreadyExistsf(format string, args ...any) *Error {
	return newf(AlreadyExists, "ALREADY_EXISTS", format, args...)
}

// Denied reports a caller that may not do what it asked.
func Denied(format string, args ...any) *Error {
	return newf(PermissionDenied, "PERMISSION_DENIED", format, args...)
}

// Unauthenticatedf reports a missing or invalid credential.
func Unauthenticatedf(format string, args ...any) *Error {
	return newf(Unauthenticated, "UNAUTHENTICATED", format, args...)
}

// Preconditionf reports a request that the resource's state forbids.
func Preconditionf(format string, args ...any) *Error {
	return newf(FailedPrecondition, "FAILED_PRECONDITION", format, args...)
}

// Unavailablef reports a dependency that cannot be reached now; the caller may retry.
func Unavailablef(err error, format string, args ...any) *Error {
	e := newf(Unavailable, "UNAVAILABLE", format, args...)
	e.Err = err
	return e
}

// WithReason returns e with its reason replaced.
func (e *Error) WithReason(reason string) *Error {
	e.Reason = reason
	return e
}

// WithMetadata returns e with a metadata entry added.
func (e *Error) WithMetadata(key, value string) *Error {
	if e.Metadata == nil {
		e.Metadata = map[string]string{}
	}
	e.Metadata[key] = value
	return e
}
