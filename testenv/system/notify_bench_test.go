package system_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/projector/notify"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// BenchmarkNotifier: 20 senders each write b.N/20 messages to their own
// direct chat, whose recipient has a disconnected phone (FCM) and tablet
// (APNs), against the local provider servers. It reports the pushes
// accepted per second (from the first send to the last push) and the
// latency from a send's ack to its push's acceptance by the provider,
// with the same for a connected device of the recipient (send→deliver)
// for comparison.
//
//	go test ./testenv/system -run '^$' -bench BenchmarkNotifier -benchtime 4000x
func BenchmarkNotifier(b *testing.B) {
	srv, senders := startPushServers(b)
	reg := prometheus.NewRegistry()
	sys, live := startWith(b, system.Options{GatewayLimits: gateway.Limits{RatePerSecond: 1e6, Burst: 1e6},
		Notifier: &notify.Config{Senders: senders, Rate: 1e6, Registerer: reg}})
	tables, err := projector.NewTables(live.Session(), live.Keyspace)
	if err != nil {
		b.Fatal(err)
	}
	const pairs = 20
	devs := make([]*testenv.WSClient, pairs)
	watchers := make([]*testenv.WSClient, pairs)
	convs := make([]string, pairs)
	for i := range devs {
		r := fmt.Sprintf("r%02d", i)
		for _, d := range []string{"phone", "tablet"} {
			cl := connect(b, sys, 0, r, d)
			target := &pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_FCM, Token: "fcm-" + r}
			if d == "tablet" {
				target = &pb.PushTarget{Provider: pb.PushProvider_PUSH_PROVIDER_APNS, Token: fmt.Sprintf("%064x", i+1),
					ApnsTopic: "com.example.chat", ApnsEnvironment: pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION}
			}
			accepted(b, cl.MustDo("", &pb.RegisterPushTarget{Target: target}))
			cl.Close()
		}
		watchers[i] = connect(b, sys, 0, r, "laptop")
		devs[i] = connect(b, sys, 0, fmt.Sprintf("s%02d", i), "phone")
		convs[i] = accepted(b, devs[i].MustDo("", direct(r)))
	}
	testenv.Eventually(b, time.Minute, func() string {
		for i := range pairs {
			if got, err := tables.PushTargets(b.Context(), fmt.Sprintf("r%02d", i)); err != nil || len(got) != 2 {
				return fmt.Sprintf("r%02d's push targets: %+v %v", i, got, err)
			}
		}
		return ""
	})
	// The devices went offline before the first message: a warm-up
	// message per chat is pushed, and waited for, before measuring.
	for i, d := range devs {
		if _, err := d.Send(b.Context(), convs[i], send("warm", "warm")); err != nil {
			b.Fatal(err)
		}
	}
	waitRequests(b, srv.fcm, pairs)
	waitRequests(b, srv.apns, pairs)
	for _, w := range watchers {
		w.DrainEvents()
	}

	var mu sync.Mutex
	sentAt := map[string]time.Time{}
	deliver := make([]time.Duration, 0, b.N)
	var wg sync.WaitGroup
	errs := make(chan error, 2*pairs)
	b.ResetTimer()
	start := time.Now()
	for w := range pairs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			for i := w; i < b.N; i += pairs {
				text := fmt.Sprintf("message %d", i)
				if _, err := devs[w].Send(ctx, convs[w], send(fmt.Sprintf("m%d", i), text)); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				sentAt[text] = time.Now()
				mu.Unlock()
			}
		})
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			for i := w; i < b.N; i += pairs {
				text := fmt.Sprintf("message %d", i)
				if _, err := watchers[w].NextEvent(ctx, func(e *pb.Event) bool { return e.GetMessageSent().GetText() == text }); err != nil {
					errs <- err
					return
				}
				got := time.Now()
				mu.Lock()
				if at, ok := sentAt[text]; ok {
					deliver = append(deliver, got.Sub(at))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	fcm, err1 := srv.fcm.WaitFor(ctx, pairs+b.N)
	apns, err2 := srv.apns.WaitFor(ctx, pairs+b.N)
	if err1 != nil || err2 != nil {
		b.Fatal(err1, err2)
	}
	b.StopTimer()
	all := append(fcm[pairs:], apns[pairs:]...)
	last := start
	lat := make([]time.Duration, 0, len(all))
	for _, r := range all {
		last = maxTime(last, r.At)
		if at, ok := sentAt[r.Body]; ok {
			lat = append(lat, r.At.Sub(at))
		}
	}
	if len(lat) != 2*b.N {
		b.Fatalf("%d pushes matched a send, want %d", len(lat), 2*b.N)
	}
	pct := func(l []time.Duration, p float64) float64 {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		return float64(l[int(p*float64(len(l)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(all))/last.Sub(start).Seconds(), "pushes/s")
	b.ReportMetric(pct(lat, 0.50), "push-p50-ms")
	b.ReportMetric(pct(lat, 0.99), "push-p99-ms")
	b.ReportMetric(pct(deliver, 0.50), "deliver-p50-ms")
	b.ReportMetric(pct(deliver, 0.99), "deliver-p99-ms")
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "parley_notifier_plan_wait_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			b.ReportMetric(1000*h.GetSampleSum()/float64(h.GetSampleCount()), "plan-wait-mean-ms")
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
