package sessionmanagerclient

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The kinds of failure a call can end with. Every error the client's calls
// return is an *Error, and errors.Is(err, ErrNotFound) (etc.) tells its kind.
// The list is part of the API: kinds are added, never renamed or removed.
var (
	// ErrNotFound: the session is absent or has expired.
	ErrNotFound = errors.New("sessionmanagerclient: not found")
	// ErrConflict: expected_version differs from the stored version, and
	// nothing changed. Read again and retry.
	ErrConflict = errors.New("sessionmanagerclient: conflict")
	// ErrInvalidArgument: a malformed field (key characters, ttl range,
	// attribute name); the message names it.
	ErrInvalidArgument = errors.New("sessionmanagerclient: invalid argument")
	// ErrResourceExhausted: the session would exceed the server's
	// SESSION_MAX_BYTES, or a message exceeds the gRPC size limit.
	ErrResourceExhausted = errors.New("sessionmanagerclient: resource exhausted")
	// ErrUnavailable: the server or its store cannot be reached. Calls that
	// are safe to repeat have been retried already.
	ErrUnavailable = errors.New("sessionmanagerclient: unavailable")
	// ErrDeadlineExceeded: the deadline passed before an answer. The call may
	// still have taken effect. errors.Is(err, context.DeadlineExceeded) holds too.
	ErrDeadlineExceeded = errors.New("sessionmanagerclient: deadline exceeded")
	// ErrCanceled: the call's context was canceled, or the client closed.
	// errors.Is(err, context.Canceled) holds too.
	ErrCanceled = errors.New("sessionmanagerclient: canceled")
	// ErrClosed: the call was made on a closed client. It is an ErrCanceled too.
	ErrClosed = errors.New("sessionmanagerclient: the client is closed")
	// ErrUnauthenticated: the bearer token is missing, malformed or unknown,
	// or the token source failed (its error is wrapped).
	ErrUnauthenticated = errors.New("sessionmanagerclient: unauthenticated")
	// ErrPermissionDenied: the token's permission does not cover the call.
	ErrPermissionDenied = errors.New("sessionmanagerclient: permission denied")
	// ErrInternal: a server bug, or a server that does not implement this contract.
	ErrInternal = errors.New("sessionmanagerclient: internal error")
	// ErrUnknown: any other failure.
	ErrUnknown = errors.New("sessionmanagerclient: unknown error")
)

// Error is the error of a failed call. Use errors.Is with the Err* kinds to
// act on it, and errors.As to read its fields. It also carries its gRPC
// status (GRPCStatus), so status.Code(err) works as it did on the raw stubs.
type Error struct {
	// Method is the RPC that failed, e.g. "GetSession".
	Method string
	// Code is the gRPC status code the call ended with (ABORTED for a
	// conflict, say), or the one the client chose for a failure of its own.
	Code codes.Code
	// Message is the server's message, which names the offending field.
	Message string

	kind  error
	cause error
}

func (e *Error) Error() string {
	return fmt.Sprintf("sessionmanagerclient: %s: %s: %s", e.Method, e.Code, e.Message)
}

// Is reports whether the error is of the given kind (one of the Err*
// variables); a deadline or cancellation also matches its context error.
func (e *Error) Is(target error) bool {
	switch target {
	case e.kind:
		return true
	case ErrCanceled, context.Canceled:
		return e.Code == codes.Canceled
	case context.DeadlineExceeded:
		return e.Code == codes.DeadlineExceeded
	}
	return false
}

// Unwrap returns what the error came from, for logs: the gRPC status error,
// the context's error, or the token source's error.
func (e *Error) Unwrap() error { return e.cause }

// GRPCStatus returns the call's gRPC status, with any details the server sent.
func (e *Error) GRPCStatus() *status.Status {
	if cause, ok := status.FromError(e.cause); ok && cause.Code() == e.Code {
		return cause
	}
	return status.New(e.Code, e.Message)
}

// kindOf maps a gRPC status code to a kind. The contract uses only some
// codes; the others, which a proxy, a mismatched server or grpc-go itself can
// produce, go to the nearest kind so that callers can still act on them.
func kindOf(code codes.Code) error {
	switch code {
	case codes.NotFound:
		return ErrNotFound
	case codes.Aborted, codes.AlreadyExists, codes.FailedPrecondition:
		return ErrConflict
	case codes.InvalidArgument, codes.OutOfRange:
		return ErrInvalidArgument
	case codes.ResourceExhausted:
		return ErrResourceExhausted
	case codes.Unavailable:
		return ErrUnavailable
	case codes.DeadlineExceeded:
		return ErrDeadlineExceeded
	case codes.Canceled:
		return ErrCanceled
	case codes.Unauthenticated:
		return ErrUnauthenticated
	case codes.PermissionDenied:
		return ErrPermissionDenied
	case codes.Internal, codes.Unimplemented, codes.DataLoss:
		return ErrInternal
	default:
		return ErrUnknown
	}
}

// callError turns what a call attempt returned (a gRPC status error or a
// context error) into an *Error.
func callError(method string, err error) *Error {
	if s, ok := status.FromError(err); ok {
		return &Error{Method: method, Code: s.Code(), Message: s.Message(), kind: kindOf(s.Code()), cause: err}
	}
	code := status.FromContextError(err).Code()
	return &Error{Method: method, Code: code, Message: err.Error(), kind: kindOf(code), cause: err}
}

func closedError(method string, cause error) *Error {
	return &Error{Method: method, Code: codes.Canceled, Message: "the client is closed", kind: ErrClosed, cause: cause}
}
