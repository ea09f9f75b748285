package sessionmanagerclient

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// RetryPolicy says how calls that are safe to repeat are retried when they
// fail with UNAVAILABLE. A zero field takes its default.
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included (default 3);
	// 1 turns retries off.
	MaxAttempts int
	// InitialBackoff bounds the first wait; the bound doubles for every
	// further retry (default 50ms).
	InitialBackoff time.Duration
	// MaxBackoff caps any one wait (default 1s). It also caps the wait before
	// reconnecting to a server that went away.
	MaxBackoff time.Duration
}

var defaultRetryPolicy = RetryPolicy{MaxAttempts: 3, InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}

// backoff is the wait before retry number `retry` (1 for the first):
// uniform between 0 and min(MaxBackoff, InitialBackoff * 2^(retry-1)). Full
// jitter spreads the retries of many clients that failed together, e.g. at
// a server restart.
func (p RetryPolicy) backoff(retry int, random func() float64) time.Duration {
	ceiling := p.InitialBackoff
	for doublings := retry - 1; doublings > 0 && ceiling < p.MaxBackoff; doublings-- {
		if ceiling > p.MaxBackoff/2 {
			ceiling = p.MaxBackoff
		} else {
			ceiling *= 2
		}
	}
	if ceiling > p.MaxBackoff {
		ceiling = p.MaxBackoff
	}
	return time.Duration(random() * float64(ceiling))
}

// uniform returns a number in [0, 1) from crypto/rand: math/rand's global
// source is seeded alike in every process before Go 1.20, which would make
// clients that failed together retry together.
func uniform() float64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 1
	}
	return float64(binary.LittleEndian.Uint64(b[:])>>11) / (1 << 53)
}
