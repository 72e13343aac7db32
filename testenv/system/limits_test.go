package system_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/gateway"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// probe tries to connect user's device to gateway gw and closes the session
// at once; it returns the refusal, nil when the connection was let in.
func probe(t *testing.T, sys *system.System, gw int, user, device string) error {
	t.Helper()
	tok, err := sys.Issuer.Issue(user, device, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := "ws" + strings.TrimPrefix(sys.GatewayURLs[gw], "http") + "/v1/ws"
	c, err := testenv.ConnectWS(ctx, url, testenv.WSOptions{Token: tok, Name: user + "/" + device, TLS: sys.ClientTLS})
	if err != nil {
		return err
	}
	c.Close()
	return nil
}

// TestE2EUserLimits: one user with a session on each of two gateways. A
// third device is refused on either gateway once each has read the other's
// presence (429 TOO_MANY_CONNECTIONS), and both sessions sending as fast as
// they can get no more accepted, together, than the user's burst plus its
// rate over the time the test measured.
func TestE2EUserLimits(t *testing.T) {
	t.Parallel()
	const rate, burst = 20, 10
	sys, _ := startWith(t, system.Options{Gateways: 2, GatewayLimits: gateway.Limits{
		RatePerSecond: 10_000, Burst: 10_000, // the sessions' own buckets never bind
		UserRatePerSecond: rate, UserBurst: burst, UserMaxConnections: 2}})
	bob := connect(t, sys, 0, "bob", "phone")
	conv := accepted(t, bob.MustDo("", direct("alice")))
	phone := connect(t, sys, 0, "alice", "phone")
	laptop := connect(t, sys, 1, "alice", "laptop")
	phone.WaitWelcome()
	laptop.WaitWelcome()

	// Each gateway counts alice's session on the other once it has read its
	// presence record: until then a third device may get in (and is closed
	// again at once).
	for gw := range 2 {
		testenv.Eventually(t, 2*time.Minute, func() string {
			err := probe(t, sys, gw, "alice", "tablet")
			if err == nil {
				return fmt.Sprintf("gateway %d let a third device of alice in", gw)
			}
			if !strings.Contains(err.Error(), "HTTP 429") || !strings.Contains(err.Error(), "ERROR_CODE_TOO_MANY_CONNECTIONS") {
				t.Fatalf("gateway %d refused the third device otherwise: %v", gw, err)
			}
			return ""
		})
	}
	// The limit is the user's: bob's second device gets in.
	if err := probe(t, sys, 1, "bob", "laptop"); err != nil {
		t.Fatalf("bob's second device: %v", err)
	}

	// Both of alice's sessions send at once, each as fast as its answers
	// come back; nothing is resent.
	const perDevice = 150
	var mu sync.Mutex
	counts := map[pb.ErrorCode]int{}
	accepted := 0
	var wg sync.WaitGroup
	t0 := time.Now()
	for _, d := range []*testenv.WSClient{phone, laptop} {
		calls := make([]*testenv.Call, perDevice)
		for i := range calls {
			calls[i] = d.Start(conv, send(fmt.Sprintf("%s-%d", d.Name(), i), "hi"))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			for _, c := range calls {
				f, err := c.Wait(ctx)
				mu.Lock()
				switch {
				case err != nil:
					counts[pb.ErrorCode_ERROR_CODE_UNSPECIFIED]++
				case f.GetAccepted() != nil:
					accepted++
				default:
					counts[f.GetError().GetCode()]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	limited := counts[pb.ErrorCode_ERROR_CODE_RATE_LIMITED]
	t.Logf("in %s: %d accepted, %d RATE_LIMITED, others %v", elapsed, accepted, limited, counts)
	if accepted+limited != 2*perDevice {
		t.Fatalf("answers other than Accepted and RATE_LIMITED: %v", counts)
	}
	// The whole budget over the time measured: every frame was read by a
	// gateway between t0 and the last answer. One token of slack for the
	// two shares' rounding.
	budget := burst + rate*elapsed.Seconds() + 1
	if float64(accepted) > budget {
		t.Fatalf("%d accepted over two gateways in %s; the user's budget is %.1f (burst %d + %d/s)", accepted, elapsed, budget, burst, rate)
	}
	// And the limit is not stricter than the budget's floor: the burst
	// (shared) passes.
	if accepted < min(2*perDevice, burst-1) {
		t.Fatalf("only %d accepted; the burst alone is %d", accepted, burst)
	}

	// Sustained: each device sends more, resending on RATE_LIMITED as the
	// documented client does (with its backoff), until every message is
	// accepted. The time that took bounds what was accepted.
	const more = 30
	t1 := time.Now()
	errs := make(chan error, 2)
	for _, d := range []*testenv.WSClient{phone, laptop} {
		calls := make([]*testenv.Call, more)
		for i := range calls {
			calls[i] = d.Go(conv, send(fmt.Sprintf("%s-more-%d", d.Name(), i), "again"))
		}
		go func() { errs <- waitAccepted(calls, 3*time.Minute) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	elapsed = time.Since(t1)
	budget = burst + rate*elapsed.Seconds() + 1
	t.Logf("sustained: %d accepted in %s (budget %.1f), %d resends", 2*more, elapsed, budget, phone.Resends()+laptop.Resends())
	if float64(2*more) > budget {
		t.Fatalf("%d accepted over two gateways in %s; the user's budget is %.1f", 2*more, elapsed, budget)
	}
}
