package system_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/gateway"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// BenchmarkAcceptedAck measures accepted-ack latency — a device's send
// frame to the gateway's Accepted frame, which the gateway sends once the
// command is durable in Kafka (acks=all) — with 20 devices each keeping one
// send in flight, over real WebSockets. Reports p50/p99 and sends/s.
//
//	go tool task env:up   # then export the PARLEY_TESTENV line it prints
//	go test ./testenv/system -run '^$' -bench AcceptedAck -benchtime 5000x
func BenchmarkAcceptedAck(b *testing.B) {
	// The per-device rate limit (50/s by default) would refuse a benchmark.
	sys, _ := startWith(b, system.Options{GatewayLimits: gateway.Limits{RatePerSecond: 1e6, Burst: 1e6}})
	const devices = 20
	devs := make([]*testenv.WSClient, devices)
	convs := make([]string, devices)
	for i := range devs {
		devs[i] = connect(b, sys, 0, fmt.Sprintf("a%02d", i), "phone")
		convs[i] = accepted(b, devs[i].MustDo("", direct(fmt.Sprintf("b%02d", i))))
	}
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < devices; w++ {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			for i := w; i < b.N; i += devices {
				t0 := time.Now()
				if _, err := devs[w].Send(ctx, convs[w], &pb.SendMessage{ClientMsgId: fmt.Sprintf("m%d", i), Text: "benchmark"}); err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sends/s")
}
