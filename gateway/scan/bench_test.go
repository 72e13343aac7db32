package scan_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/parley-im/parley/gateway/scan"
	"github.com/parley-im/parley/testenv"
)

// BenchmarkScan100MiB streams 100 MiB of random bytes (as incompressible as
// photos and videos) to a clamd on a unix socket and over TCP on loopback,
// and reports MiB/s from the first byte sent to the verdict. clamd runs
// with a one-signature database: with ClamAV's full databases its matcher
// has millions of patterns and costs more per byte.
func BenchmarkScan100MiB(b *testing.B) {
	body := random(100 << 20)
	for _, tcp := range []bool{false, true} {
		name := "unix"
		if tcp {
			name = "tcp"
		}
		b.Run(name, func(b *testing.B) {
			srv := testenv.ClamdWith(b, testenv.ClamdOptions{TCP: tcp})
			c := scan.Clamd{Network: srv.Network, Address: srv.Address, Timeout: 5 * time.Minute}
			b.SetBytes(int64(len(body)))
			n, t0 := 0, time.Now()
			for b.Loop() {
				n++
				v, err := c.Scan(context.Background(), bytes.NewReader(body))
				if err != nil || v.Infected {
					b.Fatalf("%+v, %v", v, err)
				}
			}
			b.ReportMetric(float64(len(body))/(1<<20)*float64(n)/time.Since(t0).Seconds(), "MiB/s")
		})
	}
}
