package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parley-im/parley/gateway/blob"
	"github.com/parley-im/parley/gateway/scan"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
)

// scanAttachments is the upload path of a gateway (stage, then prepare)
// with a blob directory and scanner, and no log or views.
func scanAttachments(t *testing.T, scanner Scanner) (*attachments, blob.Store) {
	t.Helper()
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Attachments{Store: store, StagingDir: t.TempDir(), Scanner: scanner}.Defaults()
	return &attachments{cfg: cfg, srv: &Server{metrics: m}, log: slog.New(slog.DiscardHandler)}, store
}

// prepared stages body and prepares it as an upload.
func (a *attachments) prepared(t *testing.T, body []byte) (*pb.Attachment, error) {
	t.Helper()
	st, err := a.stage(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.remove()
	return a.prepare(context.Background(), st, "f.bin", "")
}

func blobCount(t *testing.T, store blob.Store) int {
	t.Helper()
	n := 0
	if err := store.List(context.Background(), "", func(string, blob.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func refusedWith(err error) (int, pb.ErrorCode) {
	var he *httpError
	if errors.As(err, &he) {
		return he.status, he.code
	}
	return 0, 0
}

// TestPrepareScans: with a real clamd as the scanner, the EICAR test file
// alone, or inside an image-sized stream, is refused 422 INFECTED and
// stores nothing, and a clean file is stored; the metric counts each scan.
// Without a scanner (the default) nothing is scanned.
func TestPrepareScans(t *testing.T) {
	t.Parallel()
	clamd := testenv.Clamd(t)
	a, store := scanAttachments(t, &scan.Clamd{Network: clamd.Network, Address: clamd.Address})
	eicar := testenv.EICAR()
	embedded := make([]byte, 2<<20)
	_, _ = rand.Read(embedded)
	embedded = append(embedded, eicar...)
	for _, body := range [][]byte{eicar, embedded} {
		att, err := a.prepared(t, body)
		if status, code := refusedWith(err); status != http.StatusUnprocessableEntity || code != pb.ErrorCode_ERROR_CODE_INFECTED {
			t.Fatalf("an infected upload: %v, %v; want 422 INFECTED", att, err)
		}
		t.Logf("refused: %v", err)
	}
	if n := blobCount(t, store); n != 0 {
		t.Fatalf("infected uploads stored %d blobs", n)
	}
	clean := make([]byte, 1<<20)
	_, _ = rand.Read(clean)
	att, err := a.prepared(t, clean)
	if err != nil || att.GetSize() != int64(len(clean)) {
		t.Fatalf("a clean upload: %v, %v", att, err)
	}
	if n := blobCount(t, store); n != 1 {
		t.Fatalf("a clean upload stored %d blobs", n)
	}
	for outcome, want := range map[string]float64{scanInfected: 2, scanClean: 1, scanFailed: 0} {
		if got := counterValue(t, a.srv.metrics.scans.WithLabelValues(outcome)); got != want {
			t.Errorf("scans_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	var h dto.Metric
	if err := a.srv.metrics.scanSeconds.Write(&h); err != nil || h.GetHistogram().GetSampleCount() != 3 {
		t.Errorf("scan_seconds: %d observations (%v), want 3", h.GetHistogram().GetSampleCount(), err)
	}

	off, offStore := scanAttachments(t, nil)
	if _, err := off.prepared(t, eicar); err != nil || blobCount(t, offStore) != 1 {
		t.Fatalf("without a scanner: %v, %d blobs", err, blobCount(t, offStore))
	}
}

// failingScanner answers every scan with err, after reading a little.
type failingScanner struct{ err error }

func (f failingScanner) Scan(_ context.Context, r io.Reader) (scan.Verdict, error) {
	_, _ = io.CopyN(io.Discard, r, 100)
	return scan.Verdict{}, f.err
}

// TestPrepareScanFailsClosed: a scan without a verdict (clamd stopped,
// a timeout, clamd's size limit, an odd answer) refuses the upload 503
// UNAVAILABLE and stores nothing.
func TestPrepareScanFailsClosed(t *testing.T) {
	t.Parallel()
	clamd := testenv.Clamd(t)
	stopped := &scan.Clamd{Network: clamd.Network, Address: clamd.Address}
	clamd.Stop()
	for name, s := range map[string]Scanner{
		"clamd stopped": stopped,
		"timeout":       failingScanner{os.ErrDeadlineExceeded},
		"too large":     failingScanner{scan.ErrTooLarge},
		"odd answer":    failingScanner{&scan.ReplyError{Command: "INSTREAM", Reply: "stream: Can't allocate memory ERROR"}},
	} {
		a, store := scanAttachments(t, s)
		body := make([]byte, 10_000)
		_, _ = rand.Read(body)
		att, err := a.prepared(t, body)
		if status, code := refusedWith(err); status != http.StatusServiceUnavailable || code != pb.ErrorCode_ERROR_CODE_UNAVAILABLE {
			t.Errorf("%s: %v, %v; want 503 UNAVAILABLE", name, att, err)
		}
		if n := blobCount(t, store); n != 0 {
			t.Errorf("%s: %d blobs stored", name, n)
		}
		if got := counterValue(t, a.srv.metrics.scans.WithLabelValues(scanFailed)); got != 1 {
			t.Errorf("%s: scans_total{outcome=failed} = %v", name, got)
		}
	}
}
