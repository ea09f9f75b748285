// The client given two real service instances on one Redis (WithAddresses):
// calls are spread round robin over both, either instance serves any session,
// and when one stops the calls go on on the other.
package sessionmanagerclient_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionmanager/sessionmanager/clients/go/internal/testenv"
	"github.com/sessionmanager/sessionmanager/clients/go/sessionmanager"
	"github.com/sessionmanager/sessionmanager/clients/go/sessionmanagerclient"
)

// servedBy counts the gRPC calls each server has handled.
func servedBy(servers []*testenv.Server, method string) []int {
	counts := make([]int, len(servers))
	for i, server := range servers {
		counts[i] = server.CallsServed(method)
	}
	return counts
}

func TestReplicas(t *testing.T) {
	t.Parallel()
	redis := testenv.StartRedis(t)
	for _, mode := range []struct {
		name, host string
		stop       func(*testenv.Server)
	}{
		{"IP literals, one instance stopped gracefully", "127.0.0.1", (*testenv.Server).Stop},
		{"hostnames, one instance killed", "localhost", (*testenv.Server).Kill},
	} {
		mode := mode
		t.Run(mode.name, func(t *testing.T) {
			servers := []*testenv.Server{
				testenv.StartServer(t, testenv.RedisEnv(redis)),
				testenv.StartServer(t, testenv.RedisEnv(redis)),
			}
			client := newClient(t,
				sessionmanagerclient.WithAddresses(fmt.Sprintf("%s:%d", mode.host, servers[0].Port), fmt.Sprintf("%s:%d", mode.host, servers[1].Port)),
				sessionmanagerclient.WithRetryPolicy(sessionmanagerclient.RetryPolicy{MaxAttempts: 5, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}))
			ctx := context.Background()
			absent := &sessionmanager.GetSessionRequest{SessionKey: "absent"}
			// Both connections up before counting: the first calls may all go to
			// whichever instance answered first.
			testenv.WaitFor(t, "both instances to serve calls", 10*time.Second, func() bool {
				client.GetSession(ctx, absent)
				counts := servedBy(servers, "")
				return counts[0] > 0 && counts[1] > 0
			})

			t.Run("calls are spread round robin over both instances", func(t *testing.T) {
				before := servedBy(servers, "")
				const calls = 100
				for i := 0; i < calls; i++ {
					if _, err := client.GetSession(ctx, absent); !errors.Is(err, sessionmanagerclient.ErrNotFound) {
						t.Fatal(err)
					}
				}
				after := servedBy(servers, "")
				shares := []int{after[0] - before[0], after[1] - before[1]}
				if shares[0]+shares[1] != calls || shares[0] < calls*4/10 || shares[1] < calls*4/10 {
					t.Errorf("shares of %d calls: %v", calls, shares)
				}
			})

			t.Run("a session set through one instance is the same through the other", func(t *testing.T) {
				created, err := client.SetSessionWithResponse(ctx, &sessionmanager.SessionData{FleetListRequest: []byte("Airport")})
				if err != nil {
					t.Fatal(err)
				}
				before := servedBy(servers, "GetSession")
				for i := 0; i < 6; i++ {
					session, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: created.SessionKey})
					if err != nil || string(session.FleetListRequest) != "Airport" {
						t.Fatalf("read %d: %v, %v", i, session, err)
					}
				}
				after := servedBy(servers, "GetSession")
				if after[0] == before[0] || after[1] == before[1] {
					t.Errorf("GetSession calls served before %v, after %v: want both instances", before, after)
				}
			})

			t.Run("when one instance stops under load, reads keep succeeding on the other", func(t *testing.T) {
				stopping, survivor := servers[0], servers[1]
				key := fmt.Sprintf("replicas-%d", time.Now().UnixNano())
				if err := client.SetSession(ctx, &sessionmanager.SessionData{SessionKey: key, Attributes: map[string][]byte{"rider": []byte("r-2")}}); err != nil {
					t.Fatal(err)
				}
				var stop atomic.Bool
				var reads, writes atomic.Int64
				var mu sync.Mutex
				var readFailures, writeFailures []error
				var load sync.WaitGroup
				for i := 0; i < 4; i++ {
					load.Add(1)
					go func() {
						defer load.Done()
						for !stop.Load() {
							session, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key})
							if err == nil && string(session.Attributes["rider"]) != "r-2" {
								err = fmt.Errorf("read %v", session)
							}
							if err != nil {
								mu.Lock()
								readFailures = append(readFailures, err)
								mu.Unlock()
								continue
							}
							reads.Add(1)
						}
					}()
				}
				// SetSession without a key is not retried: count what a caller sees.
				load.Add(1)
				go func() {
					defer load.Done()
					for !stop.Load() {
						if err := client.SetSession(ctx, &sessionmanager.SessionData{TtlSeconds: 60}); err != nil {
							mu.Lock()
							writeFailures = append(writeFailures, err)
							mu.Unlock()
							continue
						}
						writes.Add(1)
					}
				}()

				testenv.WaitFor(t, "reads under way", 10*time.Second, func() bool { return reads.Load() > 20 })
				readsBeforeStop := reads.Load()
				mode.stop(stopping)
				survivorBefore := survivor.CallsServed("")
				testenv.WaitFor(t, "reads after the stop", 10*time.Second, func() bool { return reads.Load() > readsBeforeStop+200 })
				stop.Store(true)
				load.Wait()

				t.Logf("reads: %d ok, %d failed; unkeyed SetSession: %d ok, %d failed %v", reads.Load(), len(readFailures), writes.Load(), len(writeFailures), writeFailures)
				if len(readFailures) > 0 {
					t.Errorf("%d reads failed, the first: %v", len(readFailures), readFailures[0])
				}
				for _, err := range writeFailures {
					if !errors.Is(err, sessionmanagerclient.ErrUnavailable) {
						t.Errorf("an unsafe call fails, if at all, with ErrUnavailable: %v", err)
					}
				}
				if survivor.CallsServed("")-survivorBefore == 0 {
					t.Errorf("the survivor served no call after the stop")
				}

				// Everything now goes to the survivor, with no failure.
				survivorNow := survivor.CallsServed("")
				for i := 0; i < 20; i++ {
					if _, err := client.GetSession(ctx, &sessionmanager.GetSessionRequest{SessionKey: key}); err != nil {
						t.Fatal(err)
					}
					if err := client.SetSession(ctx, &sessionmanager.SessionData{TtlSeconds: 60}); err != nil {
						t.Fatal(err)
					}
				}
				if served := survivor.CallsServed("") - survivorNow; served != 40 {
					t.Errorf("the survivor served %d of 40 calls", served)
				}
			})

			t.Run("the stopped instance takes its share again once it is back on its port", func(t *testing.T) {
				stopped := servers[0]
				stopped.Start()
				// The client reconnects on its retry backoff (at most MaxBackoff apart).
				testenv.WaitFor(t, "the restarted instance to serve calls", 10*time.Second, func() bool {
					client.GetSession(ctx, absent)
					return stopped.CallsServed("") > 0
				})
			})
		})
	}
}

// A frozen instance (SIGSTOP: its connection stays open, nothing answers) is
// found by keepalive pings, so that calls stop waiting on it; without
// keepalive, every call that round robin sends there would wait until its
// deadline. grpc-go pings at most every 10s, hence a slow test.
func TestKeepaliveDropsAFrozenInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("takes over 10s: keepalive pings are at least 10s apart")
	}
	t.Parallel()
	redis := testenv.StartRedis(t)
	servers := []*testenv.Server{
		testenv.StartServer(t, testenv.RedisEnv(redis)),
		testenv.StartServer(t, testenv.RedisEnv(redis)),
	}
	client := newClient(t,
		sessionmanagerclient.WithAddresses(servers[0].Address(), servers[1].Address()),
		sessionmanagerclient.WithKeepalive(10*time.Second, time.Second),
		sessionmanagerclient.WithTimeout(30*time.Second))
	ctx := context.Background()
	absent := &sessionmanager.GetSessionRequest{SessionKey: "absent"}
	testenv.WaitFor(t, "both instances to serve calls", 10*time.Second, func() bool {
		client.GetSession(ctx, absent)
		return servers[0].CallsServed("") > 0 && servers[1].CallsServed("") > 0
	})

	servers[0].Pause()
	defer servers[0].Resume()
	started := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = client.GetSession(ctx, absent)
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(started)
	for _, err := range errs {
		if !errors.Is(err, sessionmanagerclient.ErrNotFound) {
			t.Errorf("a read while one instance is frozen: %v, want ErrNotFound from the other", err)
		}
	}
	// Ping at 10s, no ack within 1s: the calls on the frozen instance fail
	// with UNAVAILABLE near 11s and are retried on the other one, well before
	// their 30s deadline.
	if elapsed > 25*time.Second {
		t.Errorf("the reads took %s: keepalive did not drop the frozen connection", elapsed)
	}
	t.Logf("4 reads with one instance frozen took %s", elapsed)
}
