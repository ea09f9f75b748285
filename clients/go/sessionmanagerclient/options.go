package sessionmanagerclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// An Option configures a Client; pass them to New or NewClient.
type Option func(*options)

// TLS is the TLS material of WithTLS, as PEM bytes.
type TLS struct {
	// CA holds the root certificates that sign the server's; the system
	// roots when empty.
	CA []byte
	// Cert and Key are the client's certificate and key, for mutual TLS.
	// Give both or neither.
	Cert, Key []byte
	// ServerName overrides the name checked in the server's certificate
	// (the target's host by default).
	ServerName string
}

// Keepalive pings are refused below this interval: grpc-go would silently raise them to it.
const minKeepaliveInterval = 10 * time.Second

const (
	defaultPort    = 6027
	defaultTimeout = 5 * time.Second
)

// ErrInvalidOption is the kind of every error New returns for a bad option
// (and of NewClient's panic value). The message names the option.
var ErrInvalidOption = errors.New("sessionmanagerclient: invalid option")

type options struct {
	host      string
	port      int
	address   string
	addresses []string

	timeout     time.Duration
	retry       RetryPolicy
	tls         *TLS
	credentials credentials.TransportCredentials
	token       func(context.Context) (string, error)
	keepalive   *keepalive.ClientParameters
	dial        []grpc.DialOption
}

// WithHost sets the server's host name or IP address (an IPv6 literal bare,
// "::1"). The port is 6027 unless WithPort says otherwise.
func WithHost(host string) Option { return func(o *options) { o.host = host } }

// WithPort sets the server's port (default 6027), with WithHost.
func WithPort(port int) Option { return func(o *options) { o.port = port } }

// WithAddress connects to a raw gRPC target instead of a host and port, such
// as "10.0.0.7:6027" or "dns:///sessions:6027". As with WithHost, calls go
// over one connection (grpc-go's pick_first).
func WithAddress(target string) Option { return func(o *options) { o.address = target } }

// WithAddresses spreads calls round robin over several instances, each
// "host:port" (port 6027 when omitted; an IPv6 literal in brackets,
// "[fd00::7]:6027"). Instances whose connection is down are skipped until
// they reconnect. A single hostname is balanced over every address it
// resolves to. It goes alone, without WithHost, WithPort or WithAddress.
func WithAddresses(addresses ...string) Option {
	return func(o *options) { o.addresses = append([]string{}, addresses...) }
}

// WithTimeout sets the deadline of a call whose context has none (default
// 5s), retries included. Calls are never left without a deadline.
func WithTimeout(timeout time.Duration) Option { return func(o *options) { o.timeout = timeout } }

// WithRetryPolicy sets how calls that are safe to repeat are retried (see
// RetryPolicy); a zero field keeps its default. MaxAttempts 1 turns retries off.
func WithRetryPolicy(policy RetryPolicy) Option { return func(o *options) { o.retry = policy } }

// WithTLS connects over TLS, or mutual TLS when Cert and Key are given.
func WithTLS(material TLS) Option { return func(o *options) { o.tls = &material } }

// WithTransportCredentials connects with the given gRPC transport
// credentials, e.g. credentials.NewTLS(yourTLSConfig).
func WithTransportCredentials(creds credentials.TransportCredentials) Option {
	return func(o *options) { o.credentials = creds }
}

// WithBearerToken sends "authorization: Bearer <token>" with every call.
// Without TLS the token crosses the network in clear text.
func WithBearerToken(token string) Option {
	return func(o *options) {
		o.token = func(context.Context) (string, error) { return token, nil }
	}
}

// WithTokenSource calls source before every attempt of every call and sends
// the token it returns as "authorization: Bearer <token>", e.g. to refresh a
// token that expires. An error it returns fails the call with
// ErrUnauthenticated, wrapping that error.
func WithTokenSource(source func(ctx context.Context) (string, error)) Option {
	return func(o *options) { o.token = source }
}

// WithKeepalive pings an open connection every interval (10s at least) and
// drops it when a ping is not acknowledged within timeout (grpc-go's 20s
// when 0), so that a call does not wait on a server that has gone silent.
// As in grpc-go, pings are sent only while calls are in flight.
func WithKeepalive(interval, timeout time.Duration) Option {
	return func(o *options) { o.keepalive = &keepalive.ClientParameters{Time: interval, Timeout: timeout} }
}

// WithDialOptions adds grpc-go dial options, after the client's own: e.g.
// interceptors for tracing, or grpc.WithDefaultCallOptions for larger messages.
func WithDialOptions(dialOptions ...grpc.DialOption) Option {
	return func(o *options) { o.dial = append(o.dial, dialOptions...) }
}

func optionError(message string) error {
	return fmt.Errorf("%w: %s", ErrInvalidOption, message)
}

// validate fills the defaults in and checks every option, naming the one to fix.
func (o *options) validate() error {
	if o.timeout == 0 {
		o.timeout = defaultTimeout
	}
	if o.timeout < 0 {
		return optionError(fmt.Sprintf("WithTimeout must be positive, got %s", o.timeout))
	}
	if o.retry.MaxAttempts == 0 {
		o.retry.MaxAttempts = defaultRetryPolicy.MaxAttempts
	}
	if o.retry.InitialBackoff == 0 {
		o.retry.InitialBackoff = defaultRetryPolicy.InitialBackoff
	}
	if o.retry.MaxBackoff == 0 {
		o.retry.MaxBackoff = defaultRetryPolicy.MaxBackoff
	}
	switch {
	case o.retry.MaxAttempts < 1:
		return optionError(fmt.Sprintf("RetryPolicy.MaxAttempts must be at least 1, got %d", o.retry.MaxAttempts))
	case o.retry.InitialBackoff < 0:
		return optionError(fmt.Sprintf("RetryPolicy.InitialBackoff must be positive, got %s", o.retry.InitialBackoff))
	case o.retry.MaxBackoff < o.retry.InitialBackoff:
		return optionError(fmt.Sprintf("RetryPolicy.MaxBackoff (%s) must be at least InitialBackoff (%s)", o.retry.MaxBackoff, o.retry.InitialBackoff))
	}
	if o.tls != nil && o.credentials != nil {
		return optionError("give WithTLS or WithTransportCredentials, not both")
	}
	if o.keepalive != nil {
		if o.keepalive.Time < minKeepaliveInterval {
			return optionError(fmt.Sprintf("WithKeepalive interval must be at least %s (grpc-go's minimum), got %s", minKeepaliveInterval, o.keepalive.Time))
		}
		if o.keepalive.Timeout < 0 {
			return optionError(fmt.Sprintf("WithKeepalive timeout must not be negative, got %s", o.keepalive.Timeout))
		}
	}
	return nil
}

// dialOptions are the grpc-go options for a validated configuration.
func (o *options) dialOptions(t target) ([]grpc.DialOption, error) {
	transport, err := o.transportCredentials()
	if err != nil {
		return nil, err
	}
	dial := []grpc.DialOption{
		transport,
		// grpc-go waits 1s (growing to 120s) before reconnecting to a server
		// that went away, and fails calls fast meanwhile: retries would find
		// no connection. Reconnecting on the retry schedule gives them one.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  o.retry.InitialBackoff,
				Multiplier: backoff.DefaultConfig.Multiplier,
				Jitter:     backoff.DefaultConfig.Jitter,
				MaxDelay:   o.retry.MaxBackoff,
			},
			// Without it, a connection attempt would get only the backoff
			// delay to complete (20s is grpc-go's default).
			MinConnectTimeout: 20 * time.Second,
		}),
	}
	if o.keepalive != nil {
		dial = append(dial, grpc.WithKeepaliveParams(*o.keepalive))
	}
	if t.roundRobin {
		// The client decides the balancing, not a service config from DNS.
		dial = append(dial,
			grpc.WithDisableServiceConfig(),
			grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}]}`))
	}
	if t.addresses != nil {
		dial = append(dial, grpc.WithResolvers(staticResolver{addresses: t.addresses}))
	}
	return append(dial, o.dial...), nil
}

func (o *options) transportCredentials() (grpc.DialOption, error) {
	if o.credentials != nil {
		return grpc.WithTransportCredentials(o.credentials), nil
	}
	if o.tls == nil {
		return grpc.WithInsecure(), nil
	}
	config := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.tls.ServerName}
	if len(o.tls.CA) > 0 {
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(o.tls.CA) {
			return nil, optionError("TLS.CA holds no PEM certificate")
		}
		config.RootCAs = roots
	}
	if (len(o.tls.Cert) == 0) != (len(o.tls.Key) == 0) {
		return nil, optionError("TLS needs both Cert and Key, or neither")
	}
	if len(o.tls.Cert) > 0 {
		pair, err := tls.X509KeyPair(o.tls.Cert, o.tls.Key)
		if err != nil {
			return nil, optionError(fmt.Sprintf("TLS.Cert and TLS.Key: %s", strings.TrimPrefix(err.Error(), "tls: ")))
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(config)), nil
}
