package push_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/parley-im/parley/projector/push"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv/pushserver"
)

// benchSend sends b.N notifications from 16 goroutines and reports
// sends/s against the local server (whose checks — JWT verification,
// decryption — are part of the cost).
func benchSend(b *testing.B, s push.Sender, target func() *pb.PushTarget, accepted func() int) {
	b.Helper()
	ctx := context.Background()
	if err := s.Send(ctx, message(target(), "warm-up")); err != nil {
		b.Fatal(err)
	}
	before := accepted()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(p *testing.PB) {
		i := 0
		for p.Next() {
			i++
			if err := s.Send(ctx, message(target(), "bench-"+strconv.Itoa(i))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if got := accepted() - before; got != b.N {
		b.Fatalf("the server accepted %d of %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
}

func BenchmarkSendFCM(b *testing.B) {
	srv := pushserver.StartFCM(b)
	f := newFCM(b, srv)
	benchSend(b, f, func() *pb.PushTarget { return fcmTarget(fcmToken) }, func() int { return len(srv.Requests()) })
}

func BenchmarkSendAPNs(b *testing.B) {
	srv := pushserver.StartAPNs(b)
	a := newAPNs(b, srv)
	benchSend(b, a, func() *pb.PushTarget { return apnsTarget(pb.ApnsEnvironment_APNS_ENVIRONMENT_PRODUCTION) }, func() int { return len(srv.Requests()) })
}

func BenchmarkSendWebPush(b *testing.B) {
	srv := pushserver.StartWebPush(b)
	w := newWebPush(b, srv)
	sub := srv.Subscribe(b)
	benchSend(b, w, func() *pb.PushTarget { return sub.Target("dev1") }, func() int { return len(srv.Requests()) })
}

func BenchmarkSendWebhook(b *testing.B) {
	srv := pushserver.StartWebhook(b)
	w := newWebhook(b, srv, srv.Secret)
	benchSend(b, w, func() *pb.PushTarget { return srv.Target("dev1") }, func() int { return len(srv.Requests()) })
}
