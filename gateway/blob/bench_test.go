package blob_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/parley-im/parley/gateway/blob"
)

const benchSize = 100 << 20

// BenchmarkBlobPut: one Put of a 100 MiB blob of known size per iteration
// (dir: fsync included; s3: a multipart upload to the loopback Versity
// Gateway, which writes to the same disk).
//
//	go test -run '^$' -bench BenchmarkBlob -benchtime 5x ./gateway/blob
func BenchmarkBlobPut(b *testing.B) {
	for _, be := range []backend{dirBackend, s3Backend} {
		b.Run(be.name, func(b *testing.B) {
			s := openStore(b, be.env(b))
			data := randomBytes(benchSize)
			key := testKey(b, "bench put")
			for b.Loop() {
				if err := s.Put(context.Background(), key, bytes.NewReader(data), benchSize, "video/mp4"); err != nil {
					b.Fatal(err)
				}
			}
			reportMiBs(b)
		})
	}
}

// BenchmarkBlobOpenRead: Open and read to the end of a 100 MiB blob per
// iteration (from the page cache, for both: the figure is the code's and
// the protocol's, not the disk's).
func BenchmarkBlobOpenRead(b *testing.B) {
	for _, be := range []backend{dirBackend, s3Backend} {
		b.Run(be.name, func(b *testing.B) {
			s := openStore(b, be.env(b))
			key := testKey(b, "bench read")
			put(b, s, key, randomBytes(benchSize), "video/mp4")
			for b.Loop() {
				if n := openRead(b, s, key); n != benchSize {
					b.Fatalf("read %d bytes; want %d", n, benchSize)
				}
			}
			reportMiBs(b)
		})
	}
}

func openRead(b *testing.B, s blob.Store, key string) int64 {
	o, err := s.Open(context.Background(), key)
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	n, err := io.Copy(io.Discard, o)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func reportMiBs(b *testing.B) {
	b.ReportMetric(float64(benchSize)*float64(b.N)/(1<<20)/b.Elapsed().Seconds(), "MiB/s")
}
