package sessionmanagerclient

import (
	"crypto/tls"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
)

func TestInvalidOptionsNameTheOption(t *testing.T) {
	cases := []struct {
		name    string
		options []Option
		message string
	}{
		{"no target", nil, "give WithHost (and WithPort), WithAddress or WithAddresses"},
		{"a port alone", []Option{WithPort(6027)}, "give WithHost"},
		{"a port out of range", []Option{WithHost("h"), WithPort(70000)}, "WithPort must be 1-65535, got 70000"},
		{"a negative port", []Option{WithHost("h"), WithPort(-1)}, "WithPort must be 1-65535, got -1"},
		{"address with host", []Option{WithAddress("h:1"), WithHost("h")}, "WithAddress goes alone"},
		{"addresses with host", []Option{WithAddresses("a:1"), WithHost("h")}, "WithAddresses goes alone"},
		{"addresses with address", []Option{WithAddresses("a:1"), WithAddress("h:1")}, "WithAddresses goes alone"},
		{"no addresses", []Option{WithAddresses()}, "WithAddresses needs at least one"},
		{"a bad address", []Option{WithAddresses("a:1", "b:0")}, "WithAddresses[1] must be"},
		{"a negative timeout", []Option{WithHost("h"), WithTimeout(-time.Second)}, "WithTimeout must be positive"},
		{"zero attempts", []Option{WithHost("h"), WithRetryPolicy(RetryPolicy{MaxAttempts: -1})}, "RetryPolicy.MaxAttempts must be at least 1"},
		{"a negative backoff", []Option{WithHost("h"), WithRetryPolicy(RetryPolicy{InitialBackoff: -1})}, "RetryPolicy.InitialBackoff must be positive"},
		{"a cap under the first backoff", []Option{WithHost("h"), WithRetryPolicy(RetryPolicy{InitialBackoff: 2 * time.Second})}, "RetryPolicy.MaxBackoff (1s) must be at least InitialBackoff (2s)"},
		{"keepalive under 10s", []Option{WithHost("h"), WithKeepalive(time.Second, 0)}, "WithKeepalive interval must be at least 10s"},
		{"a negative keepalive timeout", []Option{WithHost("h"), WithKeepalive(time.Minute, -1)}, "WithKeepalive timeout must not be negative"},
		{"a cert without a key", []Option{WithHost("h"), WithTLS(TLS{Cert: []byte("x")})}, "TLS needs both Cert and Key"},
		{"a CA that is not PEM", []Option{WithHost("h"), WithTLS(TLS{CA: []byte("not pem")})}, "TLS.CA holds no PEM certificate"},
		{"a key pair that is not PEM", []Option{WithHost("h"), WithTLS(TLS{Cert: []byte("x"), Key: []byte("y")})}, "TLS.Cert and TLS.Key:"},
		{"TLS twice", []Option{WithHost("h"), WithTLS(TLS{}), WithTransportCredentials(credentials.NewTLS(&tls.Config{}))}, "give WithTLS or WithTransportCredentials, not both"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client, err := New(c.options...)
			if err == nil {
				client.Close()
				t.Fatalf("New accepted %s", c.name)
			}
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), c.message) {
				t.Errorf("New: %v; want ErrInvalidOption saying %q", err, c.message)
			}
			defer func() {
				if panicked, ok := recover().(error); !ok || panicked.Error() != err.Error() {
					t.Errorf("NewClient panicked with %v, want %v", panicked, err)
				}
			}()
			NewClient(c.options...)
		})
	}
}

func TestDefaults(t *testing.T) {
	client, err := New(WithHost("sessionmanager-service"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if client.conn.Target() != "sessionmanager-service:6027" {
		t.Errorf("target %q", client.conn.Target())
	}
	if client.timeout != 5*time.Second {
		t.Errorf("timeout %s", client.timeout)
	}
	if client.retry != (RetryPolicy{MaxAttempts: 3, InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}) {
		t.Errorf("retry %+v", client.retry)
	}
	partial, err := New(WithHost("h"), WithRetryPolicy(RetryPolicy{MaxAttempts: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer partial.Close()
	if partial.retry != (RetryPolicy{MaxAttempts: 1, InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}) {
		t.Errorf("a partial policy keeps the other defaults: %+v", partial.retry)
	}
}

func TestTargets(t *testing.T) {
	cases := []struct {
		name    string
		options options
		want    target
	}{
		{"host and port", options{host: "sessions", port: 7000}, target{name: "sessions:7000"}},
		{"an IPv6 host", options{host: "::1"}, target{name: "[::1]:6027"}},
		{"a raw address", options{address: "dns:///sessions:6027"}, target{name: "dns:///sessions:6027"}},
		{"one hostname", options{addresses: []string{"Sessions.internal:7000"}}, target{name: "dns:///sessions.internal:7000", roundRobin: true}},
		{"one IP", options{addresses: []string{"10.0.0.7"}}, target{name: staticScheme + ":///sessionmanager", addresses: []string{"10.0.0.7:6027"}, roundRobin: true}},
		{"IPs of both families and names", options{addresses: []string{"10.0.0.7:1", "[fd00::7]:2", "a:3", "b"}}, target{
			name: staticScheme + ":///sessionmanager", addresses: []string{"10.0.0.7:1", "[fd00::7]:2", "a:3", "b:6027"}, roundRobin: true,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := resolveTarget(&c.options)
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("resolveTarget = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestBadAddresses(t *testing.T) {
	for entry, why := range map[string]string{
		"dns:///a:1":  "no scheme or path",
		"::1":         "an IPv6 literal needs brackets",
		"fd00::7:1":   "an IPv6 literal needs brackets",
		"[10.0.0.1]":  "not an IPv6 literal in the brackets",
		"[::1":        "an unclosed bracket",
		"[::1]x":      "not a host and port",
		":6027":       "no host",
		"a:":          "", // an empty port means the default
		"a:65536":     "the port must be 1-65535",
		"a:x":         "the port must be 1-65535",
		"-a:1":        "not a valid hostname",
		"a b:1":       "not a valid hostname",
		"a.:1":        "",
		"under_s:1":   "",
		"10.0.0.1:80": "",
	} {
		_, _, err := parseAddress(entry)
		switch {
		case why == "" && err != nil:
			t.Errorf("%q: %v", entry, err)
		case why != "" && (err == nil || !strings.Contains(err.Error(), why)):
			t.Errorf("%q: %v, want %q", entry, err, why)
		}
	}
	if _, err := addressesTarget([]string{"a:1", "A:1"}); err == nil || !strings.Contains(err.Error(), "WithAddresses[1] repeats WithAddresses[0] (a:1)") {
		t.Errorf("a duplicate: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	policy := RetryPolicy{MaxAttempts: 10, InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}
	almostOne := math.Nextafter(1, 0)
	for retry, ceiling := range map[int]time.Duration{1: 50, 2: 100, 3: 200, 4: 400, 5: 800, 6: 1000, 7: 1000, 64: 1000, 1 << 20: 1000} {
		ceiling *= time.Millisecond
		if got := policy.backoff(retry, func() float64 { return 0 }); got != 0 {
			t.Errorf("retry %d, random 0: %s", retry, got)
		}
		if got := policy.backoff(retry, func() float64 { return almostOne }); got > ceiling || got < ceiling-time.Microsecond {
			t.Errorf("retry %d, random ~1: %s, want just under %s", retry, got, ceiling)
		}
	}
	seen := map[float64]bool{}
	for i := 0; i < 1000; i++ {
		u := uniform()
		if u < 0 || u >= 1 {
			t.Fatalf("uniform() = %v", u)
		}
		seen[math.Floor(u*10)] = true
	}
	if len(seen) != 10 {
		t.Errorf("1000 draws of uniform() fell in %d of 10 deciles", len(seen))
	}
}
