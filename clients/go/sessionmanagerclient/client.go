// Package sessionmanagerclient is the Go client of sessionmanager: short-lived
// session state shared between the calls of one user flow. It wraps the gRPC
// stubs generated from the service's proto (package sessionmanager) with a
// deadline on every call, retries where they are safe, round robin over
// several instances, TLS, bearer tokens, and errors that errors.Is can tell
// apart.
//
//	client := sessionmanagerclient.NewClient(
//		sessionmanagerclient.WithHost("sessionmanager-service"),
//		sessionmanagerclient.WithPort(6027),
//	)
//	defer client.Close()
//	err := client.SetSession(ctx, &sessionmanager.SessionData{SessionKey: key, FleetListRequest: req})
//	session, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key})
//	if errors.Is(err, sessionmanagerclient.ErrNotFound) { ... }
package sessionmanagerclient

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/sessionmanager/sessionmanager/clients/go/sessionmanager"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Client calls one sessionmanager service (one or several instances). It is
// safe for concurrent use; make one per process and Close it at the end.
//
// Every call takes its deadline from ctx, or WithTimeout's when ctx has none,
// and the deadline covers the retries. Calls that are safe to repeat are
// retried on UNAVAILABLE: GetSession, ListSessions, TouchSession,
// DeleteSession, RevokeSessions, SetSession with a SessionKey, and
// UpdateSession with an ExpectedVersion.
// ConsumeSession, RotateSessionKey, SetSession without a key and
// UpdateSession without an ExpectedVersion are sent once: after a lost reply
// their first attempt may have taken effect.
type Client struct {
	conn    *grpc.ClientConn
	stub    sessionmanager.SessionManagerServiceClient
	timeout time.Duration
	retry   RetryPolicy
	token   func(context.Context) (string, error)
	closed  atomic.Bool
}

// New returns a client configured by the options. It does not connect: the
// connection is made on the first call, and remade whenever it drops. An
// invalid option gives an error of kind ErrInvalidOption that names it.
func New(opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	t, err := resolveTarget(&o)
	if err != nil {
		return nil, err
	}
	dialOptions, err := o.dialOptions(t)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.Dial(t.name, dialOptions...)
	if err != nil {
		return nil, optionError(err.Error())
	}
	return &Client{
		conn:    conn,
		stub:    sessionmanager.NewSessionManagerServiceClient(conn),
		timeout: o.timeout,
		retry:   o.retry,
		token:   o.token,
	}, nil
}

// NewClient is New for configurations known to be valid, in the shape the
// existing Go services call it: it panics on an invalid option.
func NewClient(opts ...Option) *Client {
	client, err := New(opts...)
	if err != nil {
		panic(err)
	}
	return client
}

// SetSession creates a session, or replaces the one stored under
// in.SessionKey. With an empty SessionKey the server generates one: use
// SetSessionWithResponse to learn it. Retried only with a SessionKey.
func (c *Client) SetSession(ctx context.Context, in *sessionmanager.SessionData) error {
	_, err := c.SetSessionWithResponse(ctx, in)
	return err
}

// SetSessionWithResponse is SetSession returning the key the session is
// stored under, its expiry and its version.
func (c *Client) SetSessionWithResponse(ctx context.Context, in *sessionmanager.SessionData) (*sessionmanager.SetSessionResponse, error) {
	return invoke(ctx, c, "SetSession", in, in.GetSessionKey() != "", c.stub.SetSession)
}

// GetSession returns the stored session; ErrNotFound when it is absent or
// expired. With in.Touch it also extends the idle TTL. Retried.
func (c *Client) GetSession(ctx context.Context, in *sessionmanager.GetSessionRequest) (*sessionmanager.SessionData, error) {
	return invoke(ctx, c, "GetSession", in, true, c.stub.GetSession)
}

// UpdateSession merges changes into an existing session and returns it.
// ErrNotFound when it is absent, ErrConflict when in.ExpectedVersion is set
// and stale. Retried only with an ExpectedVersion (a repeat of an update
// that did apply then fails with ErrConflict rather than applying twice).
func (c *Client) UpdateSession(ctx context.Context, in *sessionmanager.UpdateSessionRequest) (*sessionmanager.SessionData, error) {
	return invoke(ctx, c, "UpdateSession", in, in.ExpectedVersion != nil, c.stub.UpdateSession)
}

// TouchSession extends the idle TTL of an existing session; ErrNotFound when
// it is absent. Retried.
func (c *Client) TouchSession(ctx context.Context, in *sessionmanager.TouchSessionRequest) (*sessionmanager.TouchSessionResponse, error) {
	return invoke(ctx, c, "TouchSession", in, true, c.stub.TouchSession)
}

// ConsumeSession reads and deletes the session in one step; ErrNotFound
// when it is absent or already consumed. Never retried: after ErrUnavailable
// or ErrDeadlineExceeded the session may or may not have been consumed.
func (c *Client) ConsumeSession(ctx context.Context, in *sessionmanager.ConsumeSessionRequest) (*sessionmanager.SessionData, error) {
	return invoke(ctx, c, "ConsumeSession", in, false, c.stub.ConsumeSession)
}

// DeleteSession deletes the session; Deleted is false when there was none.
// Retried.
func (c *Client) DeleteSession(ctx context.Context, in *sessionmanager.DeleteSessionRequest) (*sessionmanager.DeleteSessionResponse, error) {
	return invoke(ctx, c, "DeleteSession", in, true, c.stub.DeleteSession)
}

// RotateSessionKey moves the session to a new server-generated key and
// removes the old one, atomically (after a privilege change). ErrNotFound
// when it is absent. Never retried: after a lost reply the old key is gone.
func (c *Client) RotateSessionKey(ctx context.Context, in *sessionmanager.RotateSessionKeyRequest) (*sessionmanager.RotateSessionKeyResponse, error) {
	return invoke(ctx, c, "RotateSessionKey", in, false, c.stub.RotateSessionKey)
}

// ListSessions returns the live sessions of in.Owner (see SessionData's
// Owner), oldest first: a handle and the metadata of each, their payloads
// and attributes only with in.IncludeContent. Needs a token with the admin
// permission. Retried.
func (c *Client) ListSessions(ctx context.Context, in *sessionmanager.ListSessionsRequest) (*sessionmanager.ListSessionsResponse, error) {
	return invoke(ctx, c, "ListSessions", in, true, c.stub.ListSessions)
}

// RevokeSessions deletes every session of in.Owner in one step; Revoked
// counts those that were live. Needs a token with the admin permission.
// Retried, as DeleteSession is: a repeat after a lost reply deletes what is
// there then, and may count fewer.
func (c *Client) RevokeSessions(ctx context.Context, in *sessionmanager.RevokeSessionsRequest) (*sessionmanager.RevokeSessionsResponse, error) {
	return invoke(ctx, c, "RevokeSessions", in, true, c.stub.RevokeSessions)
}

// Close releases the connections. Calls made afterwards fail with ErrClosed;
// closing again does nothing.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.conn.Close()
}

type rpc[Req proto.Message, Resp any] func(context.Context, Req, ...grpc.CallOption) (Resp, error)

// invoke runs one call: its deadline, its attempts, and the error it returns.
func invoke[Req proto.Message, Resp any](ctx context.Context, c *Client, method string, in Req, retryable bool, call rpc[Req, Resp]) (Resp, error) {
	var none Resp
	if !in.ProtoReflect().IsValid() {
		return none, &Error{Method: method, Code: codes.InvalidArgument, Message: "the request is nil", kind: ErrInvalidArgument}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	for attempt := 1; ; attempt++ {
		out, err := attemptCall(ctx, c, method, in, call)
		if err == nil {
			return out, nil
		}
		if !retryable || attempt >= c.retry.MaxAttempts || err.Code != codes.Unavailable {
			return none, err
		}
		delay := c.retry.backoff(attempt, uniform)
		if deadline, _ := ctx.Deadline(); time.Until(deadline) <= delay {
			return none, err
		}
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return none, callError(method, ctx.Err())
		}
	}
}

// attemptCall is one attempt, with the bearer token when there is one.
func attemptCall[Req proto.Message, Resp any](ctx context.Context, c *Client, method string, in Req, call rpc[Req, Resp]) (Resp, *Error) {
	var none Resp
	if c.closed.Load() {
		return none, closedError(method, nil)
	}
	if c.token != nil {
		token, err := c.token(ctx)
		if err != nil {
			return none, &Error{Method: method, Code: codes.Unauthenticated, Message: "the token source failed: " + err.Error(), kind: ErrUnauthenticated, cause: err}
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	out, err := call(ctx, in)
	if err != nil {
		if c.closed.Load() {
			return none, closedError(method, err)
		}
		return none, callError(method, err)
	}
	return out, nil
}
