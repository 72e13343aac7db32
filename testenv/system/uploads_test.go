package system_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/gateway/blob"
	"github.com/parley-im/parley/ingest"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// tusClient speaks the tus 1.0 core protocol and its creation extension,
// as any tus client does, with user's token.
type tusClient struct {
	t     *testing.T
	base  string
	token string
	http  *http.Client
}

func newTusClient(t *testing.T, sys *system.System, user string) *tusClient {
	tok, _ := sys.Issuer.Issue(user, "phone", time.Hour)
	return &tusClient{t: t, base: sys.GatewayURLs[0], token: tok, http: &http.Client{}}
}

// answer is a response's status, headers and decoded error, if any.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    *pb.Error
}

func (c *tusClient) do(req *http.Request) (answer, error) {
	req.Header.Set("Tus-Resumable", "1.0.0")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	if resp.StatusCode/100 != 2 && len(b) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		a.err = &pb.Error{}
		if uerr := protojson.Unmarshal(b, a.err); uerr != nil {
			c.t.Errorf("error body %q: %v", b, uerr)
		}
	}
	return a, err
}

// create asks for an upload of size bytes into conv, with tus metadata.
func (c *tusClient) create(conv string, size int64, meta map[string]string) answer {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+"/v1/conversations/"+conv+"/uploads", nil)
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	var md []string
	for k, v := range meta {
		md = append(md, k+" "+base64.StdEncoding.EncodeToString([]byte(v)))
	}
	if len(md) > 0 {
		req.Header.Set("Upload-Metadata", strings.Join(md, ","))
	}
	a, err := c.do(req)
	if err != nil {
		c.t.Fatalf("tus create: %v", err)
	}
	return a
}

// offset asks how many bytes of the upload at loc arrived.
func (c *tusClient) offset(loc string) (int64, answer) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodHead, loc, nil)
	a, err := c.do(req)
	if err != nil {
		c.t.Fatalf("tus HEAD: %v", err)
	}
	n, _ := strconv.ParseInt(a.header.Get("Upload-Offset"), 10, 64)
	return n, a
}

// patch sends body from offset to the upload at loc.
func (c *tusClient) patch(loc string, offset int64, body []byte) (answer, error) {
	req, _ := http.NewRequest(http.MethodPatch, loc, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	return c.do(req)
}

// cutAfter makes c's connections break, from the client's side, once more
// than n bytes were written to them: a TCP connection lost mid-upload.
func (c *tusClient) cutAfter(n int64) *atomic.Int64 {
	var written atomic.Int64
	c.http = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &cutConn{Conn: conn, left: n, written: &written}, nil
	}}}
	return &written
}

type cutConn struct {
	net.Conn
	left    int64
	written *atomic.Int64
}

func (c *cutConn) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		n, _ := c.Conn.Write(p[:c.left])
		c.left = 0
		c.written.Add(int64(n))
		_ = c.Conn.Close()
		return n, errors.New("connection cut by the test")
	}
	n, err := c.Conn.Write(p)
	c.left -= int64(n)
	c.written.Add(int64(n))
	return n, err
}

// attachmentOf decodes the attachment a completed upload answers.
func attachmentOf(t *testing.T, a answer) *pb.Attachment {
	t.Helper()
	var ua pb.UploadAttachment
	if err := protojson.Unmarshal(a.body, &ua); err != nil {
		t.Fatalf("completed upload: %d %q: %v", a.status, a.body, err)
	}
	return ua.GetAttachment()
}

// TestE2EResumableUpload: a 24 MiB upload whose TCP connection breaks at
// 40% resumes from the offset the gateway reports and completes with the
// right digest; bob downloads it byte for byte. Creations over the limit
// or the quota, and a spoofed type at completion, are refused with their
// codes and leave nothing stored or staged; another user cannot see or
// continue the upload.
func TestE2EResumableUpload(t *testing.T) {
	t.Parallel()
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	staging := t.TempDir()
	sys, _ := startWith(t, system.Options{GatewayAttachments: gateway.Attachments{Store: store, StagingDir: staging,
		MaxFileBytes: 32 << 20, QuotaBytes: 40 << 20}})
	alice := connect(t, sys, 0, "alice", "phone")
	conv := accepted(t, alice.MustDo("", group("uploads", "bob")))
	bob := connect(t, sys, 0, "bob", "phone")
	bob.WaitEvent("the group", func(e *pb.Event) bool { return e.GetConversationId() == conv })

	file := make([]byte, 24<<20)
	_, _ = rand.Read(file)
	c := newTusClient(t, sys, "alice")
	created := c.create(conv, int64(len(file)), map[string]string{"filename": "train.bin"})
	if created.status != http.StatusCreated || created.header.Get("Location") == "" {
		t.Fatalf("tus create: %d %q", created.status, created.body)
	}
	loc := created.header.Get("Location")
	if !strings.Contains(loc, "/v1/uploads/") {
		t.Fatalf("Location %q", loc)
	}

	if o, a := c.offset(loc); a.status != http.StatusOK || o != 0 {
		ents, _ := os.ReadDir(filepath.Join(staging, "tus"))
		var names []string
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(staging, "tus", e.Name()))
			names = append(names, e.Name()+"="+string(b))
		}
		t.Fatalf("HEAD of a new upload %s: %d %q offset %d; staged %v", loc, a.status, a.body, o, names)
	}
	// The connection breaks once 40% of the file went out.
	written := c.cutAfter(int64(len(file)) * 4 / 10)
	if a, err := c.patch(loc, 0, file); err == nil {
		t.Fatalf("the cut PATCH answered %d %q", a.status, a.body)
	}
	t.Logf("the client wrote %d of %d bytes before the cut", written.Load(), len(file))
	c.http = &http.Client{}
	// The gateway keeps what arrived; the offset settles once the broken
	// request is over.
	var off int64
	testenv.Eventually(t, 30*time.Second, func() string {
		var a answer
		off, a = c.offset(loc)
		if a.status != http.StatusOK {
			return fmt.Sprintf("HEAD %d", a.status)
		}
		if off == 0 {
			return "no byte kept yet"
		}
		return ""
	})
	if off <= 0 || off >= int64(len(file)) || off > written.Load() {
		t.Fatalf("offset after the cut %d (written %d of %d)", off, written.Load(), len(file))
	}

	// bob can neither see nor continue alice's upload.
	other := newTusClient(t, sys, "bob")
	if _, a := other.offset(loc); a.status != http.StatusNotFound {
		t.Errorf("bob's HEAD: %d, want 404", a.status)
	}
	if a, _ := other.patch(loc, off, file[off:]); a.status != http.StatusNotFound || a.err.GetCode() != pb.ErrorCode_ERROR_CODE_ATTACHMENT_NOT_FOUND {
		t.Errorf("bob's PATCH: %d %v, want 404 ATTACHMENT_NOT_FOUND", a.status, a.err)
	}
	anon := &tusClient{t: t, base: c.base, http: &http.Client{}}
	if _, a := anon.offset(loc); a.status != http.StatusUnauthorized {
		t.Errorf("HEAD without a token: %d, want 401", a.status)
	}
	// A PATCH from a wrong offset is refused by the protocol.
	if a, _ := c.patch(loc, off+1, file[off+1:]); a.status != http.StatusConflict {
		t.Errorf("PATCH from a wrong offset: %d, want 409", a.status)
	}

	// The rest completes the upload, and the answer is the attachment.
	done, err := c.patch(loc, off, file[off:])
	if err != nil {
		t.Fatal(err)
	}
	if done.status != http.StatusCreated {
		t.Fatalf("the last PATCH: %d %q", done.status, done.body)
	}
	att := attachmentOf(t, done)
	if att.GetSha256() != sha(file) || att.GetSize() != int64(len(file)) || att.GetName() != "train.bin" {
		t.Fatalf("resumed attachment %v, want sha256 %s", att, sha(file))
	}
	if _, a := c.offset(loc); a.status != http.StatusNotFound {
		t.Errorf("HEAD of a completed upload: %d, want 404 (its staging files are gone)", a.status)
	}
	accepted(t, alice.MustDo(conv, &pb.SendMessage{ClientMsgId: "r1", AttachmentIds: []string{att.GetAttachmentId()}}))
	bob.WaitEvent("the file", func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "r1" })
	path := "/v1/conversations/" + conv + "/attachments/" + att.GetAttachmentId()
	testenv.Eventually(t, 30*time.Second, func() string {
		status, _, body := fetch(t, sys, "bob", path)
		if status != http.StatusOK || sha(body) != sha(file) {
			return fmt.Sprintf("bob's download: %d, %d bytes", status, len(body))
		}
		return ""
	})

	// Refusals at creation: over the file limit, over the quota (24 MiB
	// stored, 40 MiB allowed), and without a length.
	if a := c.create(conv, 33<<20, nil); a.status != http.StatusRequestEntityTooLarge || a.err.GetCode() != pb.ErrorCode_ERROR_CODE_FILE_TOO_LARGE {
		t.Errorf("create over the limit: %d %v, want 413 FILE_TOO_LARGE", a.status, a.err)
	}
	testenv.Eventually(t, 30*time.Second, func() string {
		if a := c.create(conv, 20<<20, nil); a.status != http.StatusForbidden || a.err.GetCode() != pb.ErrorCode_ERROR_CODE_QUOTA_EXCEEDED {
			return fmt.Sprintf("create over the quota: %d %v, want 403 QUOTA_EXCEEDED", a.status, a.err)
		}
		return ""
	})
	req, _ := http.NewRequest(http.MethodPost, c.base+"/v1/conversations/"+conv+"/uploads", nil)
	req.Header.Set("Upload-Defer-Length", "1")
	if a, _ := c.do(req); a.status != http.StatusBadRequest || a.err.GetCode() != pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Errorf("create without a length: %d %v", a.status, a.err)
	}
	if a := newTusClient(t, sys, "carol").create(conv, 10, nil); a.status != http.StatusForbidden || a.err.GetCode() != pb.ErrorCode_ERROR_CODE_NOT_MEMBER {
		t.Errorf("carol's create: %d %v, want NOT_MEMBER", a.status, a.err)
	}

	// A spoofed type is found when the bytes are complete: refused, and
	// neither stored nor kept.
	junk := file[:64<<10]
	spoof := c.create(conv, int64(len(junk)), map[string]string{"filename": "cat.png", "filetype": "image/png"})
	if spoof.status != http.StatusCreated {
		t.Fatalf("create: %d %q", spoof.status, spoof.body)
	}
	a, err := c.patch(spoof.header.Get("Location"), 0, junk)
	if err != nil || a.status != http.StatusUnsupportedMediaType || a.err.GetCode() != pb.ErrorCode_ERROR_CODE_UNSUPPORTED_MEDIA_TYPE {
		t.Errorf("spoofed upload: %d %v %v, want 415 UNSUPPORTED_MEDIA_TYPE", a.status, a.err, err)
	}
	key, _ := blob.Key("parley", sha(junk))
	if _, err := store.Stat(context.Background(), key); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("the spoofed upload is stored (%v)", err)
	}
	left, _ := filepath.Glob(filepath.Join(staging, "tus", "*"))
	if len(left) != 0 {
		t.Errorf("staging files left behind: %v", left)
	}
}

// TestE2EAttachmentLifecycle runs the janitor of each blob store: an
// unsent upload expires (AttachmentDeleted in the log) and its bytes are
// collected; a recalled message's file stops being served at once, and
// its bytes stay while another message holds the same bytes and go when
// that one is recalled too; bytes no attachment ever named (a gateway
// that crashed between storing and recording) are collected; a resumable
// upload nobody continues is removed.
func TestE2EAttachmentLifecycle(t *testing.T) {
	t.Parallel()
	eachStore(t, testLifecycle)
}

func testLifecycle(t *testing.T, store blob.Store) {
	const grace = 4 * time.Second
	reg := prometheus.NewRegistry()
	staging := t.TempDir()
	sys, _ := startWith(t, system.Options{Registerer: reg,
		IngestLimits: ingest.Limits{AttachmentTTL: time.Second},
		GatewayAttachments: gateway.Attachments{Store: store, StagingDir: staging, UploadTTL: time.Second,
			ResumeTTL: 2 * time.Second, CollectGrace: grace, JanitorInterval: 100 * time.Millisecond,
			CollectInterval: 100 * time.Millisecond}})
	ctx := context.Background()
	alice := connect(t, sys, 0, "alice", "phone")
	conv := accepted(t, alice.MustDo("", group("lifecycle", "bob")))
	bob := connect(t, sys, 0, "bob", "phone")
	bob.WaitEvent("the group", func(e *pb.Event) bool { return e.GetConversationId() == conv })
	stored := func(sha string) bool {
		key, _ := blob.Key("parley", sha)
		_, err := store.Stat(ctx, key)
		if err != nil && !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("stat %s: %v", sha, err)
		}
		return err == nil
	}
	gone := func(what, sha string) {
		t.Helper()
		testenv.Eventually(t, time.Minute, func() string {
			if stored(sha) {
				return what + " is still stored"
			}
			return ""
		})
	}

	// Bytes stored but never recorded.
	orphan := make([]byte, 1000)
	_, _ = rand.Read(orphan)
	key, _ := blob.Key("parley", sha(orphan))
	if err := store.Put(ctx, key, bytes.NewReader(orphan), int64(len(orphan)), "application/octet-stream"); err != nil {
		t.Fatal(err)
	}

	// An upload nobody sends.
	unsent := make([]byte, 3000)
	_, _ = rand.Read(unsent)
	u := upload(t, sys, "alice", conv, "left.bin", "", bytes.NewReader(unsent), int64(len(unsent)))
	if u.status != http.StatusCreated {
		t.Fatalf("upload: %d %v", u.status, u.err)
	}
	ev := alice.WaitEvent("the expiry", func(e *pb.Event) bool {
		return e.GetAttachmentDeleted().GetAttachmentId() == u.att.GetAttachmentId()
	})
	if d := ev.GetAttachmentDeleted(); d.GetReason() != pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_EXPIRED || d.GetSha256() != sha(unsent) {
		t.Errorf("expiry %v", d)
	}
	if f := alice.MustDo(conv, &pb.SendMessage{ClientMsgId: "late", AttachmentIds: []string{u.att.GetAttachmentId()}}); f.GetAccepted() != nil {
		rej := alice.WaitEvent("late refused", func(e *pb.Event) bool { return e.GetCommandRejected().GetClientMsgId() == "late" })
		if rej.GetCommandRejected().GetCode() != pb.ErrorCode_ERROR_CODE_ATTACHMENT_NOT_FOUND {
			t.Errorf("a send of an expired upload: %v", rej.GetCommandRejected())
		}
	}
	gone("the expired upload", sha(unsent))
	gone("the orphan", sha(orphan))

	// The same bytes sent twice, in two messages.
	shared := make([]byte, 5000)
	_, _ = rand.Read(shared)
	var ids []string
	for i := range 2 {
		u := upload(t, sys, "alice", conv, "shared.bin", "", bytes.NewReader(shared), int64(len(shared)))
		if u.status != http.StatusCreated {
			t.Fatalf("upload: %d %v", u.status, u.err)
		}
		ids = append(ids, u.att.GetAttachmentId())
		accepted(t, alice.MustDo(conv, &pb.SendMessage{ClientMsgId: fmt.Sprint("s", i), AttachmentIds: ids[i:]}))
	}
	m0 := bob.WaitEvent("s0", func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "s0" })
	m1 := bob.WaitEvent("s1", func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "s1" })
	path := func(id string) string { return "/v1/conversations/" + conv + "/attachments/" + id }
	accepted(t, alice.MustDo(conv, &pb.RecallMessage{Seq: m0.GetSeq()}))
	bob.WaitEvent("the recall", func(e *pb.Event) bool { return e.GetMessageRecalled().GetMessageSeq() == m0.GetSeq() })
	testenv.Eventually(t, 30*time.Second, func() string {
		if status, _, _ := fetch(t, sys, "bob", path(ids[0])); status != http.StatusNotFound {
			return fmt.Sprintf("the recalled file: %d, want 404", status)
		}
		return ""
	})
	if status, _, body := fetch(t, sys, "bob", path(ids[1])); status != http.StatusOK || sha(body) != sha(shared) {
		t.Fatalf("the file still sent: %d", status)
	}
	// Two whole collections after the grace has passed since the last
	// write of the shared bytes leave them: a live attachment holds them.
	testenv.Eventually(t, time.Minute, func() string {
		key, _ := blob.Key("parley", sha(shared))
		info, err := store.Stat(ctx, key)
		if err != nil {
			t.Fatalf("the shared bytes: %v", err)
		}
		if time.Since(info.ModTime) <= grace+time.Second {
			return "the shared bytes are within the grace"
		}
		return ""
	})
	passes := collections(t, reg)
	testenv.Eventually(t, time.Minute, func() string {
		if n := collections(t, reg); n < passes+2 {
			return fmt.Sprintf("%v collections, want %v", n, passes+2)
		}
		return ""
	})
	if !stored(sha(shared)) {
		t.Fatal("bytes a sent message holds were collected")
	}
	accepted(t, alice.MustDo(conv, &pb.RecallMessage{Seq: m1.GetSeq()}))
	gone("the bytes of two recalled messages", sha(shared))

	// A resumable upload left half done is removed after ResumeTTL.
	c := newTusClient(t, sys, "alice")
	cr := c.create(conv, 100, nil)
	if cr.status != http.StatusCreated {
		t.Fatalf("tus create: %d %q", cr.status, cr.body)
	}
	if a, err := c.patch(cr.header.Get("Location"), 0, make([]byte, 40)); err != nil || a.status != http.StatusNoContent {
		t.Fatalf("tus PATCH: %d %v", a.status, err)
	}
	testenv.Eventually(t, time.Minute, func() string {
		if _, a := c.offset(cr.header.Get("Location")); a.status != http.StatusNotFound {
			return fmt.Sprintf("the abandoned upload: HEAD %d", a.status)
		}
		return ""
	})
	if left, _ := os.ReadDir(filepath.Join(staging, "tus")); len(left) != 0 {
		t.Errorf("staging files left behind: %d", len(left))
	}
}

// collections is the number of blob collections the gateways completed.
func collections(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "parley_gateway_blob_collections_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
