package system_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/gateway/blob"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv/system"
)

// cpuTime is the CPU time (user and system) this process used so far: the
// gateway runs in it, and so does the client.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAttachmentTransfer measures a 100 MiB file through the gateway
// on loopback, to and from the local-directory blob store: a plain upload
// (POST), a resumable upload (tus, one PATCH), and a download (GET). Each
// sub-benchmark reports MiB/s and the cores the process (gateway and
// client) used meanwhile. An upload's time includes hashing, sniffing,
// the store's write and fsync, and the decider's record.
//
//	go tool task env:up   # then export the PARLEY_TESTENV line it prints
//	go test ./testenv/system -run '^$' -bench AttachmentTransfer -benchtime 3x
func BenchmarkAttachmentTransfer(b *testing.B) {
	const size = 100 << 20
	store, err := blob.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	sys, _ := startWith(b, system.Options{GatewayAttachments: gateway.Attachments{Store: store, StagingDir: b.TempDir(),
		MaxFileBytes: size, QuotaBytes: 1 << 40}})
	alice := connect(b, sys, 0, "alice", "phone")
	conv := accepted(b, alice.MustDo("", group("transfer", "bob")))
	alice.WaitEvent("the group", func(e *pb.Event) bool { return e.GetConversationId() == conv })
	tok, _ := sys.Issuer.Issue("alice", "phone", time.Hour)
	base := sys.GatewayURLs[0]
	file := make([]byte, size)
	_, _ = rand.Read(file)
	do := func(req *http.Request, want int) []byte {
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			b.Fatalf("%s %s: %d %q", req.Method, req.URL.Path, resp.StatusCode, body)
		}
		return body
	}
	measure := func(b *testing.B, each func(i int) int64) {
		var bytes int64
		c0, t0 := cpuTime(), time.Now()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			bytes += each(i)
		}
		b.StopTimer()
		wall, cpu := time.Since(t0), cpuTime()-c0
		b.ReportMetric(float64(bytes)/(1<<20)/wall.Seconds(), "MiB/s")
		b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
	}
	// Each upload differs in its first bytes, so none is deduplicated.
	variant := func(i int) []byte {
		copy(file, fmt.Sprintf("%s-%08d", b.Name(), i))
		return file
	}
	var last string
	b.Run("upload", func(b *testing.B) {
		measure(b, func(i int) int64 {
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/conversations/"+conv+"/attachments?name=big.bin", bytes.NewReader(variant(i)))
			var ua pb.UploadAttachment
			if err := protojson.Unmarshal(do(req, http.StatusCreated), &ua); err != nil {
				b.Fatal(err)
			}
			last = ua.GetAttachment().GetAttachmentId()
			return size
		})
	})
	b.Run("resumable", func(b *testing.B) {
		measure(b, func(i int) int64 {
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/conversations/"+conv+"/uploads", nil)
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("Upload-Length", strconv.Itoa(size))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusCreated {
				b.Fatalf("tus create: %v %v", resp, err)
			}
			resp.Body.Close()
			req, _ = http.NewRequest(http.MethodPatch, resp.Header.Get("Location"), bytes.NewReader(variant(i+1<<20)))
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("Upload-Offset", "0")
			req.Header.Set("Content-Type", "application/offset+octet-stream")
			do(req, http.StatusCreated)
			return size
		})
	})
	b.Run("download", func(b *testing.B) {
		if last == "" {
			b.Skip("no upload to download")
		}
		measure(b, func(int) int64 {
			req, _ := http.NewRequest(http.MethodGet, base+"/v1/conversations/"+conv+"/attachments/"+last, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("download: %v %v", resp, err)
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil || n != size {
				b.Fatalf("download: %d bytes, %v", n, err)
			}
			return n
		})
	})
}
