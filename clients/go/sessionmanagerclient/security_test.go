// Bearer tokens and TLS against the real service (in-memory store).
package sessionmanagerclient_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sessionmanager/sessionmanager/clients/go/internal/testenv"
	"github.com/sessionmanager/sessionmanager/clients/go/sessionmanager"
	"github.com/sessionmanager/sessionmanager/clients/go/sessionmanagerclient"
	"google.golang.org/grpc/credentials"
)

const (
	writeToken = "write-token-0123456789abcdef"
	readToken  = "read-token-0123456789abcdef"
)

func TestBearerToken(t *testing.T) {
	t.Parallel()
	server := testenv.StartServer(t, map[string]string{"AUTH_TOKENS": writeToken + ":write," + readToken + ":read"})
	ctx := context.Background()
	key := &sessionmanager.GetSessionRequest{SessionKey: "token-test"}

	t.Run("without a token a call fails with ErrUnauthenticated", func(t *testing.T) {
		client := newClient(t, sessionmanagerclient.WithAddress(server.Address()))
		_, err := client.GetSession(ctx, key)
		expectError(t, err, sessionmanagerclient.ErrUnauthenticated, "GetSession", "")
	})

	t.Run("an unknown token fails with ErrUnauthenticated", func(t *testing.T) {
		client := newClient(t, sessionmanagerclient.WithAddress(server.Address()), sessionmanagerclient.WithBearerToken("not-a-known-token-0123456789"))
		_, err := client.GetSession(ctx, key)
		expectError(t, err, sessionmanagerclient.ErrUnauthenticated, "GetSession", "")
	})

	t.Run("a read token reads, and may not write: ErrPermissionDenied", func(t *testing.T) {
		client := newClient(t, sessionmanagerclient.WithAddress(server.Address()), sessionmanagerclient.WithBearerToken(readToken))
		_, err := client.GetSession(ctx, key)
		expectError(t, err, sessionmanagerclient.ErrNotFound, "GetSession", "")
		err = client.SetSession(ctx, &sessionmanager.SessionData{SessionKey: "token-test"})
		expectError(t, err, sessionmanagerclient.ErrPermissionDenied, "SetSession", "")
	})

	t.Run("a write token writes", func(t *testing.T) {
		client := newClient(t, sessionmanagerclient.WithAddress(server.Address()), sessionmanagerclient.WithBearerToken(writeToken))
		if err := client.SetSession(ctx, &sessionmanager.SessionData{SessionKey: "token-test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.GetSession(ctx, key); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a token source runs before every attempt, and its failure is ErrUnauthenticated", func(t *testing.T) {
		var calls atomic.Int64
		var fail atomic.Bool
		tokenExpired := errors.New("the token could not be refreshed")
		counter := &attemptCounter{}
		client := newClient(t, sessionmanagerclient.WithAddress(server.Address()), counter.option(),
			sessionmanagerclient.WithTokenSource(func(context.Context) (string, error) {
				calls.Add(1)
				if fail.Load() {
					return "", tokenExpired
				}
				return writeToken, nil
			}))
		for i := 0; i < 3; i++ {
			if _, err := client.GetSession(ctx, key); err != nil {
				t.Fatalf("%v (attempts failed with %v)", err, counter.failures())
			}
		}
		if int(calls.Load()) != counter.count() || counter.count() < 3 {
			t.Errorf("the token source ran %d times for %d attempts", calls.Load(), counter.count())
		}
		fail.Store(true)
		attempts := counter.count()
		_, err := client.GetSession(ctx, key)
		expectError(t, err, sessionmanagerclient.ErrUnauthenticated, "GetSession", "refreshed")
		if !errors.Is(err, tokenExpired) {
			t.Errorf("the token source's error is not wrapped: %v", err)
		}
		if counter.count() != attempts {
			t.Errorf("a call was sent without its token")
		}
	})
}

func TestTLS(t *testing.T) {
	t.Parallel()
	pki := testenv.NewPKI(t)
	ctx := context.Background()
	get := &sessionmanager.GetSessionRequest{SessionKey: "tls-test"}

	t.Run("server TLS", func(t *testing.T) {
		server := testenv.StartServer(t, map[string]string{"TLS_CERT_FILE": pki.Server.CertFile, "TLS_KEY_FILE": pki.Server.KeyFile})

		client := newClient(t, sessionmanagerclient.WithAddress(server.Address()), sessionmanagerclient.WithTLS(sessionmanagerclient.TLS{CA: pki.CA.Cert}))
		_, err := client.GetSession(ctx, get)
		expectError(t, err, sessionmanagerclient.ErrNotFound, "GetSession", "")

		byName := newClient(t,
			sessionmanagerclient.WithHost("localhost"), sessionmanagerclient.WithPort(server.Port),
			sessionmanagerclient.WithTLS(sessionmanagerclient.TLS{CA: pki.CA.Cert, ServerName: "localhost"}))
		_, err = byName.GetSession(ctx, get)
		expectError(t, err, sessionmanagerclient.ErrNotFound, "GetSession", "")

		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pki.CA.Cert)
		withConfig := newClient(t, sessionmanagerclient.WithAddress(server.Address()),
			sessionmanagerclient.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots})))
		_, err = withConfig.GetSession(ctx, get)
		expectError(t, err, sessionmanagerclient.ErrNotFound, "GetSession", "")

		untrusting := newClient(t, sessionmanagerclient.WithAddress(server.Address()), sessionmanagerclient.WithTLS(sessionmanagerclient.TLS{CA: pki.Stranger.Cert}))
		_, err = untrusting.GetSession(ctx, get)
		callErr := expectError(t, err, sessionmanagerclient.ErrUnavailable, "GetSession", "")
		if !strings.Contains(callErr.Message, "certificate") {
			t.Errorf("a server certificate from an unknown CA: %q does not say why", callErr.Message)
		}

		plaintext := newClient(t, sessionmanagerclient.WithAddress(server.Address()))
		_, err = plaintext.GetSession(ctx, get)
		expectError(t, err, sessionmanagerclient.ErrUnavailable, "GetSession", "")
	})

	t.Run("mutual TLS", func(t *testing.T) {
		server := testenv.StartServer(t, map[string]string{
			"TLS_CERT_FILE": pki.Server.CertFile, "TLS_KEY_FILE": pki.Server.KeyFile, "TLS_CLIENT_CA_FILE": pki.CA.CertFile,
		})
		client := newClient(t, sessionmanagerclient.WithAddress(server.Address()),
			sessionmanagerclient.WithTLS(sessionmanagerclient.TLS{CA: pki.CA.Cert, Cert: pki.Client.Cert, Key: pki.Client.Key}))
		if err := client.SetSession(ctx, &sessionmanager.SessionData{SessionKey: "tls-test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.GetSession(ctx, get); err != nil {
			t.Fatal(err)
		}

		for name, material := range map[string]sessionmanagerclient.TLS{
			"no client certificate":            {CA: pki.CA.Cert},
			"a certificate from an unknown CA": {CA: pki.CA.Cert, Cert: pki.Stranger.Cert, Key: pki.Stranger.Key},
		} {
			refused := newClient(t, sessionmanagerclient.WithAddress(server.Address()), sessionmanagerclient.WithTLS(material),
				sessionmanagerclient.WithRetryPolicy(sessionmanagerclient.RetryPolicy{MaxAttempts: 1}))
			_, err := refused.GetSession(ctx, get)
			var callErr *sessionmanagerclient.Error
			if !errors.As(err, &callErr) || !errors.Is(err, sessionmanagerclient.ErrUnavailable) {
				t.Errorf("%s: want ErrUnavailable, got %v", name, err)
			}
		}
	})
}
