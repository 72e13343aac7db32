package system_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/gateway/blob"
	"github.com/parley-im/parley/gateway/scan"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// scanned starts a whole Parley whose gateway scans uploads with clamd,
// storing into a blob directory; it returns the store, the staging
// directory and the metrics.
func scanned(t *testing.T, clamd *testenv.ClamdServer) (*system.System, blob.Store, string, *prometheus.Registry) {
	t.Helper()
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	staging, reg := t.TempDir(), prometheus.NewRegistry()
	sys, _ := startWith(t, system.Options{Registerer: reg, GatewayAttachments: gateway.Attachments{Store: store, StagingDir: staging,
		MaxFileBytes: 32 << 20, Scanner: &scan.Clamd{Network: clamd.Network, Address: clamd.Address, Timeout: 30 * time.Second}}})
	return sys, store, staging, reg
}

// blobs lists the keys in store.
func blobs(t *testing.T, store blob.Store) []string {
	t.Helper()
	var keys []string
	if err := store.List(context.Background(), "", func(k string, _ blob.Info) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// stagedLeft lists what is left in the staging directory, plain and tus.
func stagedLeft(t *testing.T, staging string) []string {
	t.Helper()
	var left []string
	for _, pattern := range []string{"upload-*", "stripped-*", "tus/*"} {
		m, _ := filepath.Glob(filepath.Join(staging, pattern))
		left = append(left, m...)
	}
	return left
}

// metric sums the samples of the metric name whose labels include want.
func metric(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			n += m.GetCounter().GetValue()
		}
	}
	return n
}

// tusUpload creates a resumable upload of body and sends it in one PATCH,
// returning the answer of that PATCH.
func tusUpload(t *testing.T, c *tusClient, conv, name string, body []byte) answer {
	t.Helper()
	cr := c.create(conv, int64(len(body)), map[string]string{"filename": name})
	if cr.status != http.StatusCreated {
		t.Fatalf("tus create %s: %d %q", name, cr.status, cr.body)
	}
	a, err := c.patch(cr.header.Get("Location"), 0, body)
	if err != nil {
		t.Fatalf("tus PATCH %s: %v", name, err)
	}
	return a
}

// TestE2EScan: with the gateway scanning uploads with a real clamd, the
// EICAR test file — alone, and appended to a real JPEG — is refused 422
// INFECTED with a JSON error body, by a plain upload and by a resumable
// one: nothing reaches the blob store (not even the JPEG's thumbnail), the
// staging files are gone, no UploadAttachment is appended and no
// AttachmentUploaded arrives. Clean files uploaded both ways afterwards are
// stored, sent and downloaded byte for byte. The scans are counted.
func TestE2EScan(t *testing.T) {
	t.Parallel()
	clamd := testenv.Clamd(t)
	sys, store, staging, reg := scanned(t, clamd)
	alice := connect(t, sys, 0, "alice", "phone")
	conv := accepted(t, alice.MustDo("", group("scanned", "bob")))
	bob := connect(t, sys, 0, "bob", "phone")
	bob.WaitEvent("the group", func(e *pb.Event) bool { return e.GetConversationId() == conv })

	eicar := testenv.EICAR()
	photo := append(testJPEG(t, 640, 480), eicar...)
	for _, tc := range []struct {
		name, ct string
		body     []byte
	}{{"eicar.com", "", eicar}, {"holiday.jpg", "image/jpeg", photo}} {
		u := upload(t, sys, "alice", conv, tc.name, tc.ct, bytes.NewReader(tc.body), int64(len(tc.body)))
		if u.status != http.StatusUnprocessableEntity || u.err.GetCode() != pb.ErrorCode_ERROR_CODE_INFECTED || u.err.GetMessage() == "" {
			t.Fatalf("plain upload of %s: %d %v, want 422 INFECTED", tc.name, u.status, u.err)
		}
		t.Logf("plain upload of %s: %d %v", tc.name, u.status, u.err)
	}
	tc := newTusClient(t, sys, "alice")
	a := tusUpload(t, tc, conv, "eicar.com", eicar)
	if a.status != http.StatusUnprocessableEntity || a.err.GetCode() != pb.ErrorCode_ERROR_CODE_INFECTED || a.err.GetMessage() == "" {
		t.Fatalf("resumable upload of the EICAR file: %d %q, want 422 INFECTED", a.status, a.body)
	}
	if keys := blobs(t, store); len(keys) != 0 {
		t.Fatalf("infected uploads stored %v", keys)
	}
	if left := stagedLeft(t, staging); len(left) != 0 {
		t.Fatalf("infected uploads left staging files %v", left)
	}
	if n := metric(t, reg, "parley_gateway_commands_appended_total", map[string]string{"type": "UploadAttachment"}); n != 0 {
		t.Fatalf("%v UploadAttachment commands appended for infected uploads", n)
	}

	// Clean files, plainly and resumably: stored, sent, downloaded.
	clean, resumed := make([]byte, 3<<20), make([]byte, 5<<20)
	_, _ = rand.Read(clean)
	_, _ = rand.Read(resumed)
	u := upload(t, sys, "alice", conv, "clean.bin", "", bytes.NewReader(clean), int64(len(clean)))
	if u.status != http.StatusCreated {
		t.Fatalf("plain upload of a clean file: %d %v", u.status, u.err)
	}
	done := tusUpload(t, tc, conv, "resumed.bin", resumed)
	if done.status != http.StatusCreated {
		t.Fatalf("resumable upload of a clean file: %d %q", done.status, done.body)
	}
	r := attachmentOf(t, done)
	// alice's devices get every AttachmentUploaded of the conversation in
	// log order: those of the infected uploads, had there been any, would
	// come before that of the last clean one.
	infected := map[string]bool{sha(eicar): true, sha(photo): true}
	alice.WaitEvent("the clean uploads recorded", func(e *pb.Event) bool {
		if up := e.GetAttachmentUploaded(); up != nil && infected[up.GetAttachment().GetSha256()] {
			t.Errorf("an infected upload was recorded: %v", up)
		}
		return e.GetAttachmentUploaded().GetAttachment().GetAttachmentId() == r.GetAttachmentId()
	})
	accepted(t, alice.MustDo(conv, &pb.SendMessage{ClientMsgId: "c1", AttachmentIds: []string{u.att.GetAttachmentId(), r.GetAttachmentId()}}))
	bob.WaitEvent("the clean files", func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "c1" })
	for id, body := range map[string][]byte{u.att.GetAttachmentId(): clean, r.GetAttachmentId(): resumed} {
		path := "/v1/conversations/" + conv + "/attachments/" + id
		testenv.Eventually(t, 30*time.Second, func() string {
			if status, _, got := fetch(t, sys, "bob", path); status != http.StatusOK || sha(got) != sha(body) {
				return fmt.Sprintf("bob's download of %s: %d, %d bytes", id, status, len(got))
			}
			return ""
		})
	}
	if keys := blobs(t, store); len(keys) != 2 {
		t.Errorf("blobs stored: %v, want the two clean files", keys)
	}
	for outcome, want := range map[string]float64{"infected": 3, "clean": 2, "failed": 0} {
		if n := metric(t, reg, "parley_gateway_scans_total", map[string]string{"outcome": outcome}); n != want {
			t.Errorf("parley_gateway_scans_total{outcome=%q} = %v, want %v", outcome, n, want)
		}
	}
	if n := metric(t, reg, "parley_gateway_rejections_total", map[string]string{"code": "ERROR_CODE_INFECTED"}); n != 3 {
		t.Errorf("rejections_total{code=INFECTED} = %v, want 3", n)
	}
}

// TestE2EScanUnavailable: scanning fails closed. With clamd stopped, a
// clean file is refused 503 UNAVAILABLE by a plain and by a resumable
// upload, and nothing of it is stored or staged; once clamd is back the
// same file uploads, with no gateway restart.
func TestE2EScanUnavailable(t *testing.T) {
	t.Parallel()
	clamd := testenv.Clamd(t)
	sys, store, staging, reg := scanned(t, clamd)
	alice := connect(t, sys, 0, "alice", "phone")
	conv := accepted(t, alice.MustDo("", group("no scanner", "bob")))

	file := make([]byte, 2<<20)
	_, _ = rand.Read(file)
	clamd.Stop()
	if u := upload(t, sys, "alice", conv, "file.bin", "", bytes.NewReader(file), int64(len(file))); u.status != http.StatusServiceUnavailable ||
		u.err.GetCode() != pb.ErrorCode_ERROR_CODE_UNAVAILABLE {
		t.Fatalf("plain upload with clamd stopped: %d %v, want 503 UNAVAILABLE", u.status, u.err)
	} else {
		t.Logf("plain upload with clamd stopped: %d %v", u.status, u.err)
	}
	tc := newTusClient(t, sys, "alice")
	if a := tusUpload(t, tc, conv, "file.bin", file); a.status != http.StatusServiceUnavailable || a.err.GetCode() != pb.ErrorCode_ERROR_CODE_UNAVAILABLE {
		t.Fatalf("resumable upload with clamd stopped: %d %q, want 503 UNAVAILABLE", a.status, a.body)
	}
	if keys := blobs(t, store); len(keys) != 0 {
		t.Fatalf("uploads stored unscanned: %v", keys)
	}
	if left := stagedLeft(t, staging); len(left) != 0 {
		t.Fatalf("refused uploads left staging files %v", left)
	}
	if n := metric(t, reg, "parley_gateway_commands_appended_total", map[string]string{"type": "UploadAttachment"}); n != 0 {
		t.Fatalf("%v UploadAttachment commands appended without a scan", n)
	}
	if n := metric(t, reg, "parley_gateway_scans_total", map[string]string{"outcome": "failed"}); n != 2 {
		t.Errorf("parley_gateway_scans_total{outcome=failed} = %v, want 2", n)
	}

	clamd.Start()
	u := upload(t, sys, "alice", conv, "file.bin", "", bytes.NewReader(file), int64(len(file)))
	if u.status != http.StatusCreated || u.att.GetSha256() != sha(file) {
		t.Fatalf("plain upload with clamd back: %d %v", u.status, u.err)
	}
	if done := tusUpload(t, tc, conv, "file.bin", file); done.status != http.StatusCreated {
		t.Fatalf("resumable upload with clamd back: %d %q", done.status, done.body)
	}
	if keys := blobs(t, store); len(keys) != 1 {
		t.Errorf("blobs stored: %v, want the one file", keys)
	}
	if left, _ := os.ReadDir(filepath.Join(staging, "tus")); len(left) != 0 {
		t.Errorf("tus staging files left: %d", len(left))
	}
}
