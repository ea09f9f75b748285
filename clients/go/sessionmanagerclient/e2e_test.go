// The client against the real service, on the in-memory store and on Redis:
// every RPC, the errors it returns, deadlines against a stalled Redis, and
// which calls retry across a server restart.
package sessionmanagerclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionmanager/sessionmanager/clients/go/internal/testenv"
	"github.com/sessionmanager/sessionmanager/clients/go/sessionmanager"
	"github.com/sessionmanager/sessionmanager/clients/go/sessionmanagerclient"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

const sessionMaxBytes = 65536

// newClient makes a client that the test closes at its end.
func newClient(t *testing.T, opts ...sessionmanagerclient.Option) *sessionmanagerclient.Client {
	t.Helper()
	client, err := sessionmanagerclient.New(opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// attemptCounter counts the attempts a client sends: the interceptor runs
// once per attempt, below the client's retry loop. It keeps their errors.
type attemptCounter struct {
	n      atomic.Int64
	mu     sync.Mutex
	errors []error
}

func (a *attemptCounter) option() sessionmanagerclient.Option {
	return sessionmanagerclient.WithDialOptions(grpc.WithUnaryInterceptor(
		func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			a.n.Add(1)
			err := invoker(ctx, method, req, reply, cc, opts...)
			if err != nil {
				a.mu.Lock()
				a.errors = append(a.errors, err)
				a.mu.Unlock()
			}
			return err
		}))
}

func (a *attemptCounter) count() int { return int(a.n.Load()) }

// failures are the errors of the failed attempts so far.
func (a *attemptCounter) failures() []error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]error{}, a.errors...)
}

// countingClient retries safe calls fast and often, within timeout, and
// counts its attempts.
func countingClient(t *testing.T, server *testenv.Server, timeout time.Duration) (*sessionmanagerclient.Client, *attemptCounter) {
	counter := &attemptCounter{}
	client := newClient(t,
		sessionmanagerclient.WithAddress(server.Address()),
		sessionmanagerclient.WithTimeout(timeout),
		sessionmanagerclient.WithRetryPolicy(sessionmanagerclient.RetryPolicy{MaxAttempts: 1000, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}),
		counter.option())
	return client, counter
}

// expectError fails the test unless err is an *Error of the given kind, for
// the given method, whose message matches (when message is not empty).
func expectError(t *testing.T, err error, kind error, method string, message string) *sessionmanagerclient.Error {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("want an error of kind %v, got %v", kind, err)
	}
	var callErr *sessionmanagerclient.Error
	if !errors.As(err, &callErr) {
		t.Fatalf("want an *Error, got %T: %v", err, err)
	}
	if callErr.Method != method {
		t.Errorf("Method = %q, want %q", callErr.Method, method)
	}
	if message != "" && !regexp.MustCompile(message).MatchString(callErr.Message) {
		t.Errorf("Message = %q, want it to match %q", callErr.Message, message)
	}
	return callErr
}

func ctxWithTimeout(t *testing.T, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func TestEndToEnd(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		store := store
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"SESSION_MAX_BYTES": fmt.Sprint(sessionMaxBytes)}
			var redis *testenv.Redis
			if store == "redis" {
				redis = testenv.StartRedis(t)
				for name, value := range testenv.RedisEnv(redis) {
					env[name] = value
				}
			}
			server := testenv.StartServer(t, env)
			// The seed's call shape.
			client := sessionmanagerclient.NewClient(
				sessionmanagerclient.WithHost("127.0.0.1"),
				sessionmanagerclient.WithPort(server.Port),
			)
			t.Cleanup(func() { client.Close() })
			ctx := context.Background()
			prefix := fmt.Sprintf("go-e2e-%s-%d", store, time.Now().UnixNano())
			key := func(name string) string { return prefix + "." + name }

			t.Run("SetSession stores what GetSession returns, in the seed's shapes", func(t *testing.T) {
				request := []byte{0x00, 0xff, 0xfe, 'q'} // not UTF-8: payloads are opaque bytes
				response := bytes.Repeat([]byte("fleet"), 200)
				before := time.Now().UnixMilli()
				err := client.SetSession(ctx, &sessionmanager.SessionData{
					SessionKey:        key("quote"),
					FleetListRequest:  request,
					FleetListResponse: response,
					Attributes:        map[string][]byte{"rider": []byte("r-1"), "empty": {}},
					TtlSeconds:        120,
				})
				if err != nil {
					t.Fatal(err)
				}
				session, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key("quote")})
				if err != nil {
					t.Fatal(err)
				}
				want := &sessionmanager.SessionData{
					SessionKey:        key("quote"),
					FleetListRequest:  request,
					FleetListResponse: response,
					Attributes:        map[string][]byte{"rider": []byte("r-1"), "empty": {}},
					TtlSeconds:        120,
					Version:           1,
					ExpiresAtUnixMs:   session.ExpiresAtUnixMs,
					CreatedAtUnixMs:   session.CreatedAtUnixMs,
				}
				if !proto.Equal(session, want) {
					t.Errorf("GetSession = %v, want %v", session, want)
				}
				after := time.Now().UnixMilli()
				if session.CreatedAtUnixMs < before-1000 || session.CreatedAtUnixMs > after+1000 {
					t.Errorf("CreatedAtUnixMs = %d, want between %d and %d", session.CreatedAtUnixMs, before, after)
				}
				if got := session.ExpiresAtUnixMs - session.CreatedAtUnixMs; got != 120_000 {
					t.Errorf("ExpiresAtUnixMs - CreatedAtUnixMs = %d, want 120000", got)
				}
			})

			t.Run("SetSessionWithResponse without a key returns the generated one", func(t *testing.T) {
				created, err := client.SetSessionWithResponse(ctx, &sessionmanager.SessionData{Attributes: map[string][]byte{"a": []byte("1")}})
				if err != nil {
					t.Fatal(err)
				}
				if !regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`).MatchString(created.SessionKey) {
					t.Errorf("generated key %q is not 43 base64url characters", created.SessionKey)
				}
				if created.Version != 1 || created.ExpiresAtUnixMs <= time.Now().UnixMilli() {
					t.Errorf("SetSessionResponse = %v", created)
				}
				session, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: created.SessionKey})
				if err != nil || string(session.Attributes["a"]) != "1" {
					t.Fatalf("GetSession of the generated key = %v, %v", session, err)
				}
			})

			t.Run("SetSession with a key replaces the whole session and bumps its version", func(t *testing.T) {
				for _, attributes := range []map[string][]byte{{"first": []byte("1")}, {"second": []byte("2")}} {
					if err := client.SetSession(ctx, &sessionmanager.SessionData{SessionKey: key("replace"), Attributes: attributes}); err != nil {
						t.Fatal(err)
					}
				}
				session, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key("replace")})
				if err != nil {
					t.Fatal(err)
				}
				if session.Version != 2 || len(session.Attributes) != 1 || string(session.Attributes["second"]) != "2" {
					t.Errorf("after two sets: version %d, attributes %v", session.Version, session.Attributes)
				}
			})

			t.Run("GetSession of an absent key fails with ErrNotFound, which status.Code still reads", func(t *testing.T) {
				_, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key("absent")})
				callErr := expectError(t, err, sessionmanagerclient.ErrNotFound, "GetSession", "")
				if callErr.Code != codes.NotFound || status.Code(err) != codes.NotFound {
					t.Errorf("Code = %v, status.Code = %v, want NotFound", callErr.Code, status.Code(err))
				}
				if strings.Contains(err.Error(), key("absent")) {
					t.Errorf("the error quotes the session key: %v", err)
				}
			})

			t.Run("GetSession with Touch extends the expiry", func(t *testing.T) {
				created, err := client.SetSessionWithResponse(ctx, &sessionmanager.SessionData{SessionKey: key("touch-get"), TtlSeconds: 60})
				if err != nil {
					t.Fatal(err)
				}
				testenv.WaitFor(t, "the clock to move", 5*time.Second, func() bool {
					return time.Now().UnixMilli() > created.ExpiresAtUnixMs-60_000+5
				})
				session, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key("touch-get"), Touch: true})
				if err != nil {
					t.Fatal(err)
				}
				if session.ExpiresAtUnixMs <= created.ExpiresAtUnixMs {
					t.Errorf("expiry after a touching read %d, before %d", session.ExpiresAtUnixMs, created.ExpiresAtUnixMs)
				}
			})

			t.Run("UpdateSession merges, checks ExpectedVersion, and never creates", func(t *testing.T) {
				if err := client.SetSession(ctx, &sessionmanager.SessionData{
					SessionKey:        key("update"),
					FleetListRequest:  []byte("request"),
					FleetListResponse: []byte("response"),
					Attributes:        map[string][]byte{"keep": []byte("k"), "drop": []byte("d")},
				}); err != nil {
					t.Fatal(err)
				}
				version := int64(1)
				updated, err := client.UpdateSession(ctx, &sessionmanager.UpdateSessionRequest{
					SessionKey:        key("update"),
					FleetListResponse: []byte{}, // present and empty: clears it
					SetAttributes:     map[string][]byte{"new": []byte("n")},
					RemoveAttributes:  []string{"drop"},
					ExpectedVersion:   &version,
				})
				if err != nil {
					t.Fatal(err)
				}
				if updated.Version != 2 || string(updated.FleetListRequest) != "request" || len(updated.FleetListResponse) != 0 {
					t.Errorf("after the update: version %d, request %q, response %q", updated.Version, updated.FleetListRequest, updated.FleetListResponse)
				}
				if len(updated.Attributes) != 2 || string(updated.Attributes["keep"]) != "k" || string(updated.Attributes["new"]) != "n" {
					t.Errorf("after the update: attributes %v", updated.Attributes)
				}

				_, err = client.UpdateSession(ctx, &sessionmanager.UpdateSessionRequest{
					SessionKey: key("update"), SetAttributes: map[string][]byte{"late": []byte("x")}, ExpectedVersion: &version,
				})
				callErr := expectError(t, err, sessionmanagerclient.ErrConflict, "UpdateSession", "")
				if callErr.Code != codes.Aborted {
					t.Errorf("a stale version: Code = %v, want Aborted", callErr.Code)
				}
				session, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key("update")})
				if err != nil || session.Version != 2 || session.Attributes["late"] != nil {
					t.Errorf("a conflicting update changed the session: %v, %v", session, err)
				}

				_, err = client.UpdateSession(ctx, &sessionmanager.UpdateSessionRequest{SessionKey: key("update-absent"), SetAttributes: map[string][]byte{"a": nil}})
				expectError(t, err, sessionmanagerclient.ErrNotFound, "UpdateSession", "")
			})

			t.Run("TouchSession sets the ttl of an existing session only", func(t *testing.T) {
				if err := client.SetSession(ctx, &sessionmanager.SessionData{SessionKey: key("touch"), TtlSeconds: 30}); err != nil {
					t.Fatal(err)
				}
				touched, err := client.TouchSession(ctx, &sessionmanager.TouchSessionRequest{SessionKey: key("touch"), TtlSeconds: 600})
				if err != nil {
					t.Fatal(err)
				}
				if remaining := touched.ExpiresAtUnixMs - time.Now().UnixMilli(); remaining < 500_000 || remaining > 600_000 {
					t.Errorf("after a touch to 600s the session expires in %d ms", remaining)
				}
				session, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key("touch")})
				if err != nil || session.TtlSeconds != 600 {
					t.Errorf("the stored ttl after the touch: %v, %v", session, err)
				}
				_, err = client.TouchSession(ctx, &sessionmanager.TouchSessionRequest{SessionKey: key("touch-absent")})
				expectError(t, err, sessionmanagerclient.ErrNotFound, "TouchSession", "")
			})

			t.Run("ConsumeSession returns the session once", func(t *testing.T) {
				if err := client.SetSession(ctx, &sessionmanager.SessionData{SessionKey: key("consume"), FleetListResponse: []byte("quote")}); err != nil {
					t.Fatal(err)
				}
				consumed, err := client.ConsumeSession(ctx, &sessionmanager.ConsumeSessionRequest{SessionKey: key("consume")})
				if err != nil || string(consumed.FleetListResponse) != "quote" {
					t.Fatalf("ConsumeSession = %v, %v", consumed, err)
				}
				_, err = client.ConsumeSession(ctx, &sessionmanager.ConsumeSessionRequest{SessionKey: key("consume")})
				expectError(t, err, sessionmanagerclient.ErrNotFound, "ConsumeSession", "")
				_, err = client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key("consume")})
				expectError(t, err, sessionmanagerclient.ErrNotFound, "GetSession", "")
			})

			t.Run("DeleteSession reports whether there was a session", func(t *testing.T) {
				if err := client.SetSession(ctx, &sessionmanager.SessionData{SessionKey: key("delete")}); err != nil {
					t.Fatal(err)
				}
				for _, want := range []bool{true, false} {
					deleted, err := client.DeleteSession(ctx, &sessionmanager.DeleteSessionRequest{SessionKey: key("delete")})
					if err != nil || deleted.Deleted != want {
						t.Errorf("DeleteSession = %v, %v; want deleted %v", deleted, err, want)
					}
				}
			})

			t.Run("RotateSessionKey moves the session to a new key", func(t *testing.T) {
				created, err := client.SetSessionWithResponse(ctx, &sessionmanager.SessionData{SessionKey: key("rotate"), Attributes: map[string][]byte{"rider": []byte("r-3")}})
				if err != nil {
					t.Fatal(err)
				}
				rotated, err := client.RotateSessionKey(ctx, &sessionmanager.RotateSessionKeyRequest{SessionKey: key("rotate")})
				if err != nil {
					t.Fatal(err)
				}
				if rotated.SessionKey == key("rotate") || rotated.Version != created.Version || rotated.ExpiresAtUnixMs != created.ExpiresAtUnixMs {
					t.Errorf("RotateSessionKey = %v after %v", rotated, created)
				}
				_, err = client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key("rotate")})
				expectError(t, err, sessionmanagerclient.ErrNotFound, "GetSession", "")
				session, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: rotated.SessionKey})
				if err != nil || string(session.Attributes["rider"]) != "r-3" {
					t.Errorf("the session under its new key: %v, %v", session, err)
				}
				_, err = client.RotateSessionKey(ctx, &sessionmanager.RotateSessionKeyRequest{SessionKey: key("rotate")})
				expectError(t, err, sessionmanagerclient.ErrNotFound, "RotateSessionKey", "")
			})

			t.Run("a malformed field fails with ErrInvalidArgument naming it", func(t *testing.T) {
				_, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: "has spaces"})
				callErr := expectError(t, err, sessionmanagerclient.ErrInvalidArgument, "GetSession", "session_key")
				if callErr.Code != codes.InvalidArgument {
					t.Errorf("Code = %v", callErr.Code)
				}
				err = client.SetSession(ctx, &sessionmanager.SessionData{SessionKey: key("bad-ttl"), TtlSeconds: -1})
				expectError(t, err, sessionmanagerclient.ErrInvalidArgument, "SetSession", "ttl_seconds")
			})

			t.Run("a nil request fails with ErrInvalidArgument without being sent", func(t *testing.T) {
				counter := &attemptCounter{}
				nilClient := newClient(t, sessionmanagerclient.WithAddress(server.Address()), counter.option())
				err := nilClient.SetSession(ctx, nil)
				expectError(t, err, sessionmanagerclient.ErrInvalidArgument, "SetSession", "nil")
				_, err = nilClient.GetSession(ctx, nil)
				expectError(t, err, sessionmanagerclient.ErrInvalidArgument, "GetSession", "nil")
				if counter.count() != 0 {
					t.Errorf("%d attempts were sent", counter.count())
				}
			})

			t.Run("a session over SESSION_MAX_BYTES fails with ErrResourceExhausted", func(t *testing.T) {
				err := client.SetSession(ctx, &sessionmanager.SessionData{
					SessionKey: key("big"),
					Attributes: map[string][]byte{"note": bytes.Repeat([]byte("x"), sessionMaxBytes)},
				})
				expectError(t, err, sessionmanagerclient.ErrResourceExhausted, "SetSession", "")
			})

			t.Run("WithAddresses with one hostname balances over what DNS resolves it to", func(t *testing.T) {
				// localhost resolves to 127.0.0.1 and maybe ::1, where nothing listens.
				byName := newClient(t, sessionmanagerclient.WithAddresses(fmt.Sprintf("localhost:%d", server.Port)))
				for i := 0; i < 4; i++ {
					if _, err := byName.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key("quote")}); err != nil {
						t.Fatal(err)
					}
				}
			})

			t.Run("a canceled context fails the call with ErrCanceled", func(t *testing.T) {
				canceled, cancel := context.WithCancel(ctx)
				cancel()
				_, err := client.GetSession(canceled, &sessionmanager.GetSessionRequest{SessionKey: key("quote")})
				expectError(t, err, sessionmanagerclient.ErrCanceled, "GetSession", "")
				if !errors.Is(err, context.Canceled) {
					t.Errorf("errors.Is(err, context.Canceled) is false for %v", err)
				}
			})

			if redis != nil {
				t.Run("deadlines fire while Redis hangs", func(t *testing.T) {
					testDeadlinesAgainstAStalledRedis(t, server, redis, key("hang"))
				})
				t.Run("reads retry while Redis does not answer and succeed once it is back", func(t *testing.T) {
					testRetryWhileRedisPaused(t, server, redis, key("redis-pause"))
				})
			}

			t.Run("calls that are unsafe to repeat are not retried while the server is down", func(t *testing.T) {
				testNoRetryForUnsafeCalls(t, server, key("unsafe"))
			})

			t.Run("calls that are safe to repeat retry across a server restart", func(t *testing.T) {
				testRetryAcrossRestart(t, server, redis != nil, key("restart"))
			})

			t.Run("Close makes later calls fail with ErrClosed", func(t *testing.T) {
				closing := newClient(t, sessionmanagerclient.WithAddress(server.Address()))
				if _, err := closing.DeleteSession(ctx, &sessionmanager.DeleteSessionRequest{SessionKey: key("closed")}); err != nil {
					t.Fatal(err)
				}
				if err := closing.Close(); err != nil {
					t.Fatal(err)
				}
				_, err := closing.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key("closed")})
				expectError(t, err, sessionmanagerclient.ErrClosed, "GetSession", "closed")
				if !errors.Is(err, sessionmanagerclient.ErrCanceled) || status.Code(err) != codes.Canceled {
					t.Errorf("a call on a closed client: %v, want it canceled", err)
				}
				if err := closing.Close(); err != nil {
					t.Errorf("a second Close: %v", err)
				}
			})
		})
	}
}

func testDeadlinesAgainstAStalledRedis(t *testing.T, server *testenv.Server, redis *testenv.Redis, key string) {
	client := newClient(t, sessionmanagerclient.WithAddress(server.Address()), sessionmanagerclient.WithTimeout(300*time.Millisecond))
	if err := client.SetSession(context.Background(), &sessionmanager.SessionData{SessionKey: key}); err != nil {
		t.Fatal(err)
	}
	redis.Pause(t)
	defer redis.Resume(t)

	started := time.Now()
	_, err := client.GetSession(ctxWithTimeout(t, 200*time.Millisecond), &sessionmanager.GetSessionRequest{SessionKey: key})
	elapsed := time.Since(started)
	expectError(t, err, sessionmanagerclient.ErrDeadlineExceeded, "GetSession", "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(err, context.DeadlineExceeded) is false for %v", err)
	}
	if elapsed < 190*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("the context's 200ms deadline fired after %s", elapsed)
	}

	started = time.Now()
	_, err = client.TouchSession(context.Background(), &sessionmanager.TouchSessionRequest{SessionKey: key})
	elapsed = time.Since(started)
	expectError(t, err, sessionmanagerclient.ErrDeadlineExceeded, "TouchSession", "")
	if elapsed < 290*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("WithTimeout's 300ms deadline fired after %s", elapsed)
	}

	canceled, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = client.GetSession(canceled, &sessionmanager.GetSessionRequest{SessionKey: key})
	expectError(t, err, sessionmanagerclient.ErrCanceled, "GetSession", "")
}

func testRetryWhileRedisPaused(t *testing.T, server *testenv.Server, redis *testenv.Redis, key string) {
	ctx := context.Background()
	client, counter := countingClient(t, server, 20*time.Second)
	if err := client.SetSession(ctx, &sessionmanager.SessionData{SessionKey: key, Attributes: map[string][]byte{"rider": []byte("r-9")}}); err != nil {
		t.Fatal(err)
	}
	// Paused rather than stopped: the test Redis keeps no data across a restart.
	redis.Pause(t)
	type result struct {
		session *sessionmanager.SessionData
		err     error
	}
	done := make(chan result, 1)
	before := counter.count()
	go func() {
		session, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key})
		done <- result{session, err}
	}()
	testenv.WaitFor(t, "a retry after the store timed out", 15*time.Second, func() bool { return counter.count()-before >= 2 })
	redis.Resume(t)
	got := <-done
	if got.err != nil || string(got.session.Attributes["rider"]) != "r-9" {
		t.Fatalf("GetSession after Redis came back: %v, %v", got.session, got.err)
	}
}

func testNoRetryForUnsafeCalls(t *testing.T, server *testenv.Server, key string) {
	ctx := context.Background()
	client, counter := countingClient(t, server, 10*time.Second)
	if err := client.SetSession(ctx, &sessionmanager.SessionData{SessionKey: key}); err != nil {
		t.Fatal(err)
	}
	server.Stop()
	defer server.Start()

	version := int64(1)
	unsafe := []struct {
		name string
		call func() error
	}{
		{"ConsumeSession", func() error {
			_, err := client.ConsumeSession(ctx, &sessionmanager.ConsumeSessionRequest{SessionKey: key})
			return err
		}},
		{"UpdateSession", func() error {
			_, err := client.UpdateSession(ctx, &sessionmanager.UpdateSessionRequest{SessionKey: key, SetAttributes: map[string][]byte{"a": []byte("1")}})
			return err
		}},
		{"SetSession", func() error { return client.SetSession(ctx, &sessionmanager.SessionData{}) }},
		{"RotateSessionKey", func() error {
			_, err := client.RotateSessionKey(ctx, &sessionmanager.RotateSessionKeyRequest{SessionKey: key})
			return err
		}},
	}
	for _, call := range unsafe {
		before := counter.count()
		err := call.call()
		expectError(t, err, sessionmanagerclient.ErrUnavailable, call.name, "")
		if attempts := counter.count() - before; attempts != 1 {
			t.Errorf("%s made %d attempts, want 1", call.name, attempts)
		}
	}

	safe := []struct {
		name string
		call func(context.Context) error
	}{
		{"UpdateSession", func(ctx context.Context) error {
			_, err := client.UpdateSession(ctx, &sessionmanager.UpdateSessionRequest{SessionKey: key, ExpectedVersion: &version})
			return err
		}},
		{"SetSession", func(ctx context.Context) error {
			return client.SetSession(ctx, &sessionmanager.SessionData{SessionKey: key})
		}},
	}
	for _, call := range safe {
		before := counter.count()
		err := call.call(ctxWithTimeout(t, 300*time.Millisecond))
		var callErr *sessionmanagerclient.Error
		if !errors.As(err, &callErr) || callErr.Method != call.name {
			t.Errorf("%s with a server down: %v", call.name, err)
		}
		if attempts := counter.count() - before; attempts < 2 {
			t.Errorf("%s (keyed or versioned) made %d attempts, want retries", call.name, attempts)
		}
	}
}

func testRetryAcrossRestart(t *testing.T, server *testenv.Server, persistent bool, key string) {
	ctx := context.Background()
	client, counter := countingClient(t, server, 30*time.Second)
	if err := client.SetSession(ctx, &sessionmanager.SessionData{SessionKey: key, Attributes: map[string][]byte{"rider": []byte("r-7")}}); err != nil {
		t.Fatal(err)
	}
	server.Stop()
	defer func() {
		if !server.Running() {
			server.Start()
		}
	}()
	before := counter.count()
	type result struct {
		session *sessionmanager.SessionData
		deleted *sessionmanager.DeleteSessionResponse
		err     error
	}
	gotten, deleted := make(chan result, 1), make(chan result, 1)
	go func() {
		session, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key})
		gotten <- result{session: session, err: err}
	}()
	go func() {
		response, err := client.DeleteSession(ctx, &sessionmanager.DeleteSessionRequest{SessionKey: key + "-other"})
		deleted <- result{deleted: response, err: err}
	}()
	testenv.WaitFor(t, "retries against the stopped server", 10*time.Second, func() bool { return counter.count()-before >= 4 })
	server.Start()

	get := <-gotten
	if persistent {
		if get.err != nil || string(get.session.Attributes["rider"]) != "r-7" {
			t.Errorf("GetSession across the restart: %v, %v; Redis kept the session", get.session, get.err)
		}
	} else {
		expectError(t, get.err, sessionmanagerclient.ErrNotFound, "GetSession", "")
	}
	del := <-deleted
	if del.err != nil || del.deleted.Deleted {
		t.Errorf("DeleteSession across the restart: %v, %v", del.deleted, del.err)
	}
}

// grpc-go on its own waits 1s, then 1.6s, and longer, before reconnecting;
// the client reconnects on its retry backoff instead, so that retries find a
// connection soon after a server comes back. A listener that closes every
// connection it accepts counts the attempts.
func TestReconnectsOnTheRetrySchedule(t *testing.T) {
	t.Parallel()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	var accepted atomic.Int64
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}()
	client := newClient(t,
		sessionmanagerclient.WithAddress(listener.Addr().String()),
		sessionmanagerclient.WithTimeout(1500*time.Millisecond),
		sessionmanagerclient.WithRetryPolicy(sessionmanagerclient.RetryPolicy{MaxAttempts: 1000, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}))
	_, err = client.GetSession(context.Background(), &sessionmanager.GetSessionRequest{SessionKey: "k"})
	if !errors.Is(err, sessionmanagerclient.ErrUnavailable) && !errors.Is(err, sessionmanagerclient.ErrDeadlineExceeded) {
		t.Errorf("GetSession against a listener that closes every connection: %v", err)
	}
	// About 15 at most 100ms apart; grpc-go's own backoff would make 2.
	if n := accepted.Load(); n < 5 {
		t.Errorf("%d connection attempts in 1.5s", n)
	}
}
