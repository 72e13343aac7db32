package gateway

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/parley-im/parley/gateway/blob"
	"github.com/parley-im/parley/gateway/scan"
	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/schemas/token"
)

// Attachments configures uploads and downloads (README.md, "Attachments").
// Without a Store the attachment endpoints answer 503 UNAVAILABLE.
type Attachments struct {
	// Store holds the bytes (blob.Dir on one machine, blob.S3 in
	// production).
	Store blob.Store
	// Namespace prefixes every blob key (blob.Key): one deployment's blobs
	// in a shared bucket (default "parley").
	Namespace string
	// StagingDir holds uploads while they arrive and are checked (default:
	// a "parley-uploads" directory in the system's temporary directory).
	StagingDir string
	// MaxFileBytes bounds one file (default 100 MiB; FILE_TOO_LARGE).
	MaxFileBytes int64
	// QuotaBytes bounds what one user stores, files and thumbnails, of
	// attachments not deleted (default 10 GiB; QUOTA_EXCEEDED).
	QuotaBytes int64
	// AllowedTypes lists the media types accepted, as sniffed from the
	// bytes: exact types and "type/*" patterns (default "*/*": any).
	AllowedTypes []string
	// KeepLocation stores images with their location (GPS) data; by
	// default it is removed before they are stored (media.StripLocation).
	KeepLocation bool
	// ThumbnailPixels is the longest side of an image's thumbnail (default
	// 320).
	ThumbnailPixels int
	// URLKey signs download URLs. Every gateway behind one address needs
	// the same key; without one a random key is made at start, and the
	// URLs one gateway signs work on that gateway only.
	URLKey []byte
	// URLTTL is how long a signed URL works (default 15 min).
	URLTTL time.Duration
	// DecisionWait bounds how long an upload waits for the decider to
	// record it before it answers 202 with the attachment pending
	// (default 10 s).
	DecisionWait time.Duration

	// UploadTTL is the age after which the janitor asks the decider to
	// delete an upload no message sent (default 24h; the decider applies
	// its own PARLEY_INGEST_ATTACHMENT_TTL, so keep the two equal).
	UploadTTL time.Duration
	// ResumeTTL is how long a resumable upload waits for its next PATCH
	// before the janitor removes it (default 24h).
	ResumeTTL time.Duration
	// CollectGrace is how long a blob no live attachment holds is kept
	// after it was last written or touched (default 1h).
	CollectGrace time.Duration
	// JanitorInterval is the period of the expiry and staging passes
	// (default 1 min); CollectInterval that of blob collection, which
	// lists the whole store (default 1h).
	JanitorInterval, CollectInterval time.Duration
	// JanitorOff stops this gateway's janitor (another runs it).
	JanitorOff bool

	// Scanner checks every upload's bytes for viruses before anything of
	// it is stored (README.md, "Virus scanning"); nil (the default): no
	// scanning. An infected file is refused 422 INFECTED; a scan that
	// fails (the scanner unreachable, too slow, or refusing the size) is
	// refused 503 UNAVAILABLE: never stored unscanned.
	Scanner Scanner
}

// Scanner scans bytes for viruses; *scan.Clamd is one. An error is no
// verdict.
type Scanner interface {
	Scan(ctx context.Context, r io.Reader) (scan.Verdict, error)
}

// DefaultAttachments is used for every zero field of Attachments.
var DefaultAttachments = Attachments{
	Namespace:       "parley",
	MaxFileBytes:    100 << 20,
	QuotaBytes:      10 << 30,
	AllowedTypes:    []string{"*/*"},
	ThumbnailPixels: 320,
	URLTTL:          15 * time.Minute,
	DecisionWait:    10 * time.Second,
	UploadTTL:       24 * time.Hour,
	ResumeTTL:       24 * time.Hour,
	CollectGrace:    time.Hour,
	JanitorInterval: time.Minute,
	CollectInterval: time.Hour,
}

// Defaults fills the zero fields of a from DefaultAttachments.
func (a Attachments) Defaults() Attachments {
	d := DefaultAttachments
	if a.Namespace == "" {
		a.Namespace = d.Namespace
	}
	if a.StagingDir == "" {
		a.StagingDir = filepath.Join(os.TempDir(), "parley-uploads")
	}
	if a.MaxFileBytes <= 0 {
		a.MaxFileBytes = d.MaxFileBytes
	}
	if a.QuotaBytes <= 0 {
		a.QuotaBytes = d.QuotaBytes
	}
	if len(a.AllowedTypes) == 0 {
		a.AllowedTypes = d.AllowedTypes
	}
	if a.ThumbnailPixels <= 0 {
		a.ThumbnailPixels = d.ThumbnailPixels
	}
	if a.URLTTL <= 0 {
		a.URLTTL = d.URLTTL
	}
	if a.DecisionWait <= 0 {
		a.DecisionWait = d.DecisionWait
	}
	for _, f := range []struct {
		v *time.Duration
		d time.Duration
	}{
		{&a.UploadTTL, d.UploadTTL}, {&a.ResumeTTL, d.ResumeTTL}, {&a.CollectGrace, d.CollectGrace},
		{&a.JanitorInterval, d.JanitorInterval}, {&a.CollectInterval, d.CollectInterval},
	} {
		if *f.v <= 0 {
			*f.v = f.d
		}
	}
	return a
}

// Validate reports a setting no gateway can run with.
func (a Attachments) Validate() error {
	if a.Store == nil {
		return nil
	}
	if _, err := blob.Key(a.Namespace, strings.Repeat("0", 64)); err != nil {
		return fmt.Errorf("gateway: attachments namespace: %w", err)
	}
	if len(a.URLKey) > 0 && len(a.URLKey) < 32 {
		return fmt.Errorf("gateway: the attachment URL key must be at least 32 bytes, got %d", len(a.URLKey))
	}
	for _, t := range a.AllowedTypes {
		if !strings.Contains(t, "/") {
			return fmt.Errorf("gateway: allowed attachment type %q is not a media type or a type/* pattern", t)
		}
	}
	return nil
}

// attachmentViews are the reads the attachment endpoints make.
type attachmentViews interface {
	attachment(ctx context.Context, conv, id string) (projector.AttachmentRow, bool, error)
	ownerUsage(ctx context.Context, user string) (int64, error)
	isMember(ctx context.Context, conv, user string) (bool, error)
	lastVersion(ctx context.Context, conv string) (int64, error)
	joinFloor(ctx context.Context, conv, user string) (floor, error)
	message(ctx context.Context, conv string, seq int64) (sourceMessage, error)
	deleted(ctx context.Context, conv string) (bool, error)
}

func (v *cassandraViews) attachment(ctx context.Context, conv, id string) (projector.AttachmentRow, bool, error) {
	return v.tables.Attachment(ctx, conv, id)
}

// deleted says whether conv was deleted (ConversationDeleted): nothing of
// it is served any more.
func (v *cassandraViews) deleted(ctx context.Context, conv string) (bool, error) {
	c, _, err := v.tables.Conversation(ctx, conv)
	return c.Deleted, err
}

func (v *cassandraViews) ownerUsage(ctx context.Context, user string) (int64, error) {
	b, _, err := v.tables.OwnerUsage(ctx, user)
	return b, err
}

// attachments serves the attachment endpoints of one gateway.
type attachments struct {
	cfg   Attachments
	srv   *Server
	views attachmentViews
	key   []byte
	log   *slog.Logger
	tus   *tusUploads
}

func newAttachments(s *Server, cfg Attachments, v attachmentViews) (*attachments, error) {
	a := &attachments{cfg: cfg, srv: s, views: v, key: cfg.URLKey, log: s.log.With("part", "attachments")}
	if len(a.key) == 0 {
		a.key = make([]byte, 32)
		_, _ = rand.Read(a.key)
	}
	if err := os.MkdirAll(cfg.StagingDir, 0o700); err != nil {
		return nil, fmt.Errorf("gateway: attachments staging directory: %w", err)
	}
	var err error
	if a.tus, err = newTusUploads(a); err != nil {
		return nil, err
	}
	return a, nil
}

// routes adds the attachment endpoints to mux.
func (a *attachments) routes(mux *router) {
	mux.HandleFunc("POST /v1/conversations/{conversation}/attachments", a.serveUpload)
	mux.HandleFunc("GET /v1/conversations/{conversation}/attachments/{attachment}", a.serveDownload)
	mux.HandleFunc("GET /v1/conversations/{conversation}/attachments/{attachment}/url", a.serveURL)
	mux.HandleFunc("GET /v1/files/{conversation}/{attachment}/{variant}", a.serveSigned)
	a.tus.routes(mux)
}

// httpError is a refusal of an attachment request.
type httpError struct {
	status int
	code   pb.ErrorCode
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func refuse(status int, code pb.ErrorCode, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// countRefusal counts a refusal in the gateway's rejections metric.
func (a *attachments) countRefusal(err error) {
	var he *httpError
	if errors.As(err, &he) {
		a.srv.metrics.rejections.WithLabelValues(he.code.String()).Inc()
	}
}

func (a *attachments) fail(w http.ResponseWriter, err error) {
	a.countRefusal(err)
	var he *httpError
	if errors.As(err, &he) {
		writeError(w, he.status, he.code, he.msg)
		return
	}
	a.log.Warn("attachment request failed", "err", err)
	writeError(w, http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "the attachment could not be stored or read; retry")
}

// authenticate verifies the request's token (header or access_token).
func (a *attachments) authenticate(r *http.Request) (token.Identity, error) {
	return a.srv.authenticateDevice(r)
}

// authenticateDevice verifies an HTTP request's token (header or
// access_token) and that it names a device; else a 401 UNAUTHENTICATED.
func (s *Server) authenticateDevice(r *http.Request) (token.Identity, error) {
	id, _, err := s.verifier.VerifyUntil(token.TokenFromRequest(r))
	if err != nil {
		return token.Identity{}, refuse(http.StatusUnauthorized, pb.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "%v", err)
	}
	if id.DeviceID == "" {
		return token.Identity{}, refuse(http.StatusUnauthorized, pb.ErrorCode_ERROR_CODE_UNAUTHENTICATED,
			"token has no device claim (%s); the gateway needs one", token.DeviceClaim)
	}
	if msg, banned := s.banned(id.UserID, time.Now()); banned {
		return token.Identity{}, refuse(http.StatusForbidden, pb.ErrorCode_ERROR_CODE_USER_BANNED, "%s", msg)
	}
	if msg, revoked := s.revoked(id.UserID, id.DeviceID); revoked {
		return token.Identity{}, refuse(http.StatusForbidden, pb.ErrorCode_ERROR_CODE_DEVICE_REVOKED, "%s", msg)
	}
	return id, nil
}

func pathConversation(r *http.Request) (string, error) {
	conv := r.PathValue("conversation")
	if err := schemas.CheckConversationID("conversation", conv); err != nil {
		return "", refuse(http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ID, "%v", err)
	}
	return conv, nil
}

func pathAttachment(r *http.Request) (string, string, error) {
	conv, err := pathConversation(r)
	if err != nil {
		return "", "", err
	}
	id := r.PathValue("attachment")
	if err := schemas.CheckAttachmentID("attachment", id); err != nil {
		return "", "", refuse(http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ID, "%v", err)
	}
	return conv, id, nil
}

// serveUpload takes one file in the request body (POST, any size up to
// MaxFileBytes), checks and stores it, and records it in the log.
func (a *attachments) serveUpload(w http.ResponseWriter, r *http.Request) {
	id, err := a.authenticate(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	conv, err := pathConversation(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	att, status, err := a.upload(r.Context(), id, conv, r)
	if err != nil {
		a.fail(w, err)
		return
	}
	w.Header().Set("Location", "/v1/conversations/"+conv+"/attachments/"+att.GetAttachmentId())
	writeProto(w, status, &pb.UploadAttachment{Attachment: att})
}

// upload stores the body of r as an attachment of conv by the user of id:
// staged to a file while hashed (never whole in memory), checked, stored
// under its digest, then recorded by an UploadAttachment command. It returns
// 201 once the decider recorded it, or 202 when the decision did not come
// within DecisionWait (the device then learns it from AttachmentUploaded).
func (a *attachments) upload(ctx context.Context, id token.Identity, conv string, r *http.Request) (*pb.Attachment, int, error) {
	used, err := a.admit(ctx, id, conv, r.ContentLength)
	if err != nil {
		return nil, 0, err
	}
	name := schemas.CleanFileName(r.URL.Query().Get("name"))
	declared := ""
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return nil, 0, refuse(http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "Content-Type: %v", err)
		}
		declared = mt
	}
	staged, err := a.stage(r.Body, r.ContentLength)
	if err != nil {
		return nil, 0, err
	}
	defer staged.remove()
	return a.record(ctx, id, conv, staged, used, name, declared)
}

// admit makes the checks an upload passes before its bytes are read: a
// known length (negative: unknown) within MaxFileBytes, a member of conv,
// and the quota. It returns the bytes the user stores already.
func (a *attachments) admit(ctx context.Context, id token.Identity, conv string, length int64) (used int64, err error) {
	cfg := a.cfg
	if length > cfg.MaxFileBytes {
		return 0, refuse(http.StatusRequestEntityTooLarge, pb.ErrorCode_ERROR_CODE_FILE_TOO_LARGE,
			"the file is %d bytes, the limit is %d", length, cfg.MaxFileBytes)
	}
	if err := a.member(ctx, conv, id.UserID); err != nil {
		return 0, err
	}
	used, err = a.views.ownerUsage(ctx, id.UserID)
	if err != nil {
		return 0, err
	}
	if length > 0 && used+length > cfg.QuotaBytes {
		return 0, refuse(http.StatusForbidden, pb.ErrorCode_ERROR_CODE_QUOTA_EXCEEDED,
			"you store %d bytes of attachments; %d more would pass the quota of %d", used, length, cfg.QuotaBytes)
	}
	return used, nil
}

// memberWait bounds how long an upload waits for the members view to
// catch up with the log before it answers UNAVAILABLE.
const memberWait = 5 * time.Second

// member refuses a user who is not a member of conv. The members view may
// lag the log (a group created a moment ago), so a user it does not list
// is refused only once the view has reached the highest version of conv
// this gateway has seen; until then it is read again, for up to
// memberWait. A conversation neither has seen anything of (created a
// moment ago, its creation not yet decided, or none at all) is read again
// for memberWait too, then refused. The decider checks membership again
// when it records the upload; this check spares storing a stranger's
// bytes.
func (a *attachments) member(ctx context.Context, conv, user string) error {
	deadline := time.Now().Add(memberWait)
	for {
		ok, err := a.views.isMember(ctx, conv, user)
		if err != nil || ok {
			return err
		}
		top, err := a.views.lastVersion(ctx, conv)
		if err != nil {
			return err
		}
		if ok, err := a.views.isMember(ctx, conv, user); err != nil || ok {
			return err
		}
		// Caught up with what this gateway has seen: a stranger. Unless
		// neither has seen anything of conv yet, which is also a group
		// whose creation was accepted a moment ago: that waits, and is a
		// stranger's only once memberWait has passed.
		if seen := a.srv.members.logVersion(conv); top >= seen && (seen > 0 || time.Now().After(deadline)) {
			return refuse(http.StatusForbidden, pb.ErrorCode_ERROR_CODE_NOT_MEMBER, "not a member of %s", conv)
		}
		if time.Now().After(deadline) {
			return refuse(http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE,
				"the views have not caught up with %s yet; retry", conv)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(resumePoll):
		}
	}
}

// record turns staged bytes into an attachment of conv: the quota checked
// again with the real size, the bytes checked and stored (prepare), and
// the UploadAttachment command appended. It returns 201 once the decider
// recorded it, or 202 when the decision did not come within DecisionWait
// (the device then learns it from AttachmentUploaded).
func (a *attachments) record(ctx context.Context, id token.Identity, conv string, st *staged, used int64, name, declared string) (*pb.Attachment, int, error) {
	if used+st.size > a.cfg.QuotaBytes {
		return nil, 0, refuse(http.StatusForbidden, pb.ErrorCode_ERROR_CODE_QUOTA_EXCEEDED,
			"you store %d bytes of attachments; %d more would pass the quota of %d", used, st.size, a.cfg.QuotaBytes)
	}
	att, err := a.prepare(ctx, st, schemas.CleanFileName(name), declared)
	if err != nil {
		return nil, 0, err
	}
	att.AttachmentId, att.OwnerUserId = schemas.NewAttachmentID(), id.UserID
	att.UploadedAt = timestamppb.New(time.Now())
	if err := schemas.CheckAttachment(att); err != nil {
		return nil, 0, fmt.Errorf("built an attachment the decider refuses: %w", err)
	}
	cmd := &pb.Command{CommandId: newID(time.Now()), UserId: id.UserID, DeviceId: id.DeviceID, ConversationId: conv,
		ReceivedAt: timestamppb.Now(), Body: &pb.Command_UploadAttachment{UploadAttachment: &pb.UploadAttachment{Attachment: att}}}
	ev, err := a.srv.appendAndWait(ctx, cmd, a.cfg.DecisionWait, nil)
	if err != nil {
		return nil, 0, err
	}
	switch {
	case ev == nil:
		return att, http.StatusAccepted, nil
	case ev.GetCommandRejected() != nil:
		rej := ev.GetCommandRejected()
		status := http.StatusConflict
		switch rej.GetCode() {
		case pb.ErrorCode_ERROR_CODE_NOT_MEMBER:
			status = http.StatusForbidden
		case pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT:
			status = http.StatusBadRequest
		}
		return nil, 0, refuse(status, rej.GetCode(), "%s", rej.GetMessage())
	}
	if err := a.ensureStored(ctx, st, att); err != nil {
		return nil, 0, err
	}
	return att, http.StatusCreated, nil
}

// staged is an upload written to the staging directory, with its digest.
type staged struct {
	path   string
	size   int64
	sha256 string
}

func (s *staged) remove() { _ = os.Remove(s.path) }

func (s *staged) open() (*os.File, error) { return os.Open(s.path) }

// stage copies body to a staging file, hashing it, refusing more than
// MaxFileBytes and a body shorter or longer than its Content-Length.
func (a *attachments) stage(body io.Reader, length int64) (*staged, error) {
	f, err := os.CreateTemp(a.cfg.StagingDir, "upload-*")
	if err != nil {
		return nil, err
	}
	s := &staged{path: f.Name()}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, a.cfg.MaxFileBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		s.remove()
		return nil, refuse(http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "the upload broke off after %d bytes: %v", n, err)
	case n > a.cfg.MaxFileBytes:
		s.remove()
		return nil, refuse(http.StatusRequestEntityTooLarge, pb.ErrorCode_ERROR_CODE_FILE_TOO_LARGE,
			"the file is larger than the limit of %d bytes", a.cfg.MaxFileBytes)
	case length >= 0 && n != length:
		s.remove()
		return nil, refuse(http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "the body is %d bytes, Content-Length said %d", n, length)
	}
	s.size, s.sha256 = n, hex.EncodeToString(h.Sum(nil))
	return s, nil
}

// put stores the staged file (or bytes) under its digest's key, once: a
// blob that is there already (the same bytes uploaded before) is touched
// so a collector that weighs its age sees it fresh.
func (a *attachments) put(ctx context.Context, sha string, size int64, contentType string, open func() (io.ReadCloser, error)) error {
	key, err := blob.Key(a.cfg.Namespace, sha)
	if err != nil {
		return err
	}
	if info, err := a.cfg.Store.Stat(ctx, key); err == nil && info.Size == size {
		return a.cfg.Store.Touch(ctx, key)
	}
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	return a.cfg.Store.Put(ctx, key, rc, size, contentType)
}

// ensureStored makes sure, once the decider recorded att, that its bytes
// and thumbnail are in the store: the collector (collect) may have taken a
// blob of the same digest, unreferenced until then, between this upload's
// Touch and its record. The file's bytes are put again from the staged
// file; a thumbnail or location-stripped bytes, no longer at hand, make the
// upload fail UNAVAILABLE (upload again).
func (a *attachments) ensureStored(ctx context.Context, st *staged, att *pb.Attachment) error {
	for _, sha := range []string{att.GetSha256(), att.GetThumbnail().GetSha256()} {
		if sha == "" {
			continue
		}
		key, err := blob.Key(a.cfg.Namespace, sha)
		if err != nil {
			return err
		}
		_, err = a.cfg.Store.Stat(ctx, key)
		switch {
		case err == nil:
			continue
		case !errors.Is(err, blob.ErrNotFound):
			return err
		case sha != st.sha256:
			return fmt.Errorf("blob %s was collected while its upload was recorded", sha)
		}
		if err := a.put(ctx, sha, st.size, att.GetContentType(), func() (io.ReadCloser, error) { return st.open() }); err != nil {
			return err
		}
	}
	return nil
}

// readable checks that user may read attachment id of conv and returns it:
// its uploader while unsent; once sent, a current member who may see the
// message (not recalled, not below a since_join floor) of a conversation
// not deleted. Every check reads
// the views, so a removal, a recall or an expiry takes effect at once.
func (a *attachments) readable(ctx context.Context, conv, id, user string) (projector.AttachmentRow, error) {
	row, found, err := a.views.attachment(ctx, conv, id)
	if err != nil {
		return row, err
	}
	notFound := refuse(http.StatusNotFound, pb.ErrorCode_ERROR_CODE_ATTACHMENT_NOT_FOUND, "no attachment %s in %s", id, conv)
	if !found || row.DeletedReason != "" {
		return row, notFound
	}
	owner := row.Attachment.GetOwnerUserId() == user
	if row.MessageSeq == 0 {
		if owner {
			return row, nil
		}
		return row, notFound
	}
	member, err := a.views.isMember(ctx, conv, user)
	if err != nil {
		return row, err
	}
	if !member {
		return row, refuse(http.StatusForbidden, pb.ErrorCode_ERROR_CODE_NOT_MEMBER, "not a member of %s", conv)
	}
	// A deleted conversation serves nothing, its files neither (their
	// bytes stay until the log's events that name them go).
	if gone, err := a.views.deleted(ctx, conv); err != nil || gone {
		return row, cmp.Or(err, error(notFound))
	}
	m, err := a.views.message(ctx, conv, row.MessageSeq)
	if err != nil {
		return row, err
	}
	if !m.found || m.recalled {
		return row, notFound
	}
	fl, err := a.views.joinFloor(ctx, conv, user)
	if err != nil {
		return row, err
	}
	if row.MessageSeq < fl.seq {
		return row, notFound
	}
	return row, nil
}

// Variants of an attachment a download names.
const (
	variantFile      = "file"
	variantThumbnail = "thumbnail"
)

func variantOf(v string) (string, error) {
	switch v {
	case "", variantFile:
		return variantFile, nil
	case variantThumbnail:
		return variantThumbnail, nil
	}
	return "", refuse(http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "variant must be %q or %q", variantFile, variantThumbnail)
}

// authenticated verifies the token of a request that names one
// attachment, and reads the names.
func (a *attachments) authenticated(r *http.Request) (_ token.Identity, conv, att string, _ error) {
	id, err := a.authenticate(r)
	if err != nil {
		return id, "", "", err
	}
	conv, att, err = pathAttachment(r)
	return id, conv, att, err
}

// serveDownload serves an attachment to a request with a token.
func (a *attachments) serveDownload(w http.ResponseWriter, r *http.Request) {
	id, conv, att, err := a.authenticated(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	variant, err := variantOf(r.URL.Query().Get("variant"))
	if err != nil {
		a.fail(w, err)
		return
	}
	a.serve(w, r, conv, att, variant, id.UserID, "private, no-cache")
}

// urlAnswer is the JSON of a signed-URL request.
type urlAnswer struct {
	URL          string    `json:"url"`
	ThumbnailURL string    `json:"thumbnail_url,omitempty"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// serveURL answers signed URLs of an attachment (and its thumbnail) that
// work without a token until they expire, for <img src> and the like. The
// access check is made now and again when the URL is fetched.
func (a *attachments) serveURL(w http.ResponseWriter, r *http.Request) {
	id, conv, att, err := a.authenticated(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	row, err := a.readable(r.Context(), conv, att, id.UserID)
	if err != nil {
		a.fail(w, err)
		return
	}
	exp := time.Now().Add(a.cfg.URLTTL).Truncate(time.Second)
	ans := urlAnswer{URL: a.signedPath(conv, att, variantFile, id.UserID, exp), ExpiresAt: exp.UTC()}
	if row.Attachment.GetThumbnail() != nil {
		ans.ThumbnailURL = a.signedPath(conv, att, variantThumbnail, id.UserID, exp)
	}
	writeJSONBody(w, http.StatusOK, ans)
}

// urlSignature is the URL signature, under key, of one variant of an
// attachment for user until exp (Unix seconds).
func urlSignature(key []byte, conv, att, variant, user string, exp int64) []byte {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "parley file\x00%s\x00%s\x00%s\x00%s\x00%d", conv, att, variant, user, exp)
	return m.Sum(nil)
}

// SignedAttachmentPath is the signed download path (see README.md,
// "Attachments") of one variant ("file" or "thumbnail") of attachment att
// of conv for user, valid until exp, under the URL key key (at second
// precision).
func SignedAttachmentPath(key []byte, conv, att, variant, user string, exp time.Time) string {
	q := url.Values{}
	q.Set("u", user)
	q.Set("e", strconv.FormatInt(exp.Unix(), 10))
	q.Set("s", base64.RawURLEncoding.EncodeToString(urlSignature(key, conv, att, variant, user, exp.Unix())))
	return "/v1/files/" + conv + "/" + att + "/" + variant + "?" + q.Encode()
}

func (a *attachments) signedPath(conv, att, variant, user string, exp time.Time) string {
	return SignedAttachmentPath(a.key, conv, att, variant, user, exp)
}

// serveSigned serves a signed URL: the signature and expiry are checked,
// then the same access check as with a token, for the user it was signed
// for.
func (a *attachments) serveSigned(w http.ResponseWriter, r *http.Request) {
	conv, att, err := pathAttachment(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	variant, err := variantOf(r.PathValue("variant"))
	if err != nil {
		a.fail(w, err)
		return
	}
	q := r.URL.Query()
	user := q.Get("u")
	exp, perr := strconv.ParseInt(q.Get("e"), 10, 64)
	sig, serr := base64.RawURLEncoding.DecodeString(q.Get("s"))
	switch {
	case user == "" || perr != nil || serr != nil || !hmac.Equal(sig, urlSignature(a.key, conv, att, variant, user, exp)):
		a.fail(w, refuse(http.StatusForbidden, pb.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "the URL's signature is not valid"))
		return
	case time.Now().Unix() >= exp:
		a.fail(w, refuse(http.StatusForbidden, pb.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "the URL expired at %s; ask for a new one",
			time.Unix(exp, 0).UTC().Format(time.RFC3339)))
		return
	}
	a.serve(w, r, conv, att, variant, user, fmt.Sprintf("private, max-age=%d", max(exp-time.Now().Unix(), 0)))
}

// serve answers one variant of an attachment after the access check:
// Range requests, ETag (the bytes' SHA-256) and conditional requests by
// http.ServeContent, the sniffed Content-Type, and Content-Disposition
// inline for media and attachment (with the file name) for files.
func (a *attachments) serve(w http.ResponseWriter, r *http.Request, conv, att, variant, user, cacheControl string) {
	row, err := a.readable(r.Context(), conv, att, user)
	if err != nil {
		a.fail(w, err)
		return
	}
	at := row.Attachment
	sha, ct := at.GetSha256(), at.GetContentType()
	if variant == variantThumbnail {
		if at.GetThumbnail() == nil {
			a.fail(w, refuse(http.StatusNotFound, pb.ErrorCode_ERROR_CODE_ATTACHMENT_NOT_FOUND, "attachment %s has no thumbnail", att))
			return
		}
		sha, ct = at.GetThumbnail().GetSha256(), at.GetThumbnail().GetContentType()
	}
	key, err := blob.Key(a.cfg.Namespace, sha)
	if err != nil {
		a.fail(w, err)
		return
	}
	obj, err := a.cfg.Store.Open(r.Context(), key)
	if errors.Is(err, blob.ErrNotFound) {
		a.fail(w, refuse(http.StatusNotFound, pb.ErrorCode_ERROR_CODE_ATTACHMENT_NOT_FOUND, "the bytes of attachment %s are gone", att))
		return
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	defer obj.Close()
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("ETag", `"`+sha+`"`)
	h.Set("Cache-Control", cacheControl)
	h.Set("X-Content-Type-Options", "nosniff")
	disposition := "inline"
	if variant == variantFile && at.GetKind() == pb.AttachmentKind_ATTACHMENT_KIND_FILE {
		disposition = "attachment"
	}
	if name := at.GetName(); name != "" && variant == variantFile {
		h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": name}))
	} else {
		h.Set("Content-Disposition", disposition)
	}
	var content io.ReadSeeker = obj
	if f, ok := obj.(blob.FileObject); ok {
		content = f.OSFile() // sendfile(2) instead of a copy through user space
	}
	http.ServeContent(w, r, "", row.UploadedAt, content)
}

// writeProto answers m as protojson, like the WebSocket's JSON frames.
func writeProto(w http.ResponseWriter, status int, m proto.Message) {
	b, err := jsonOut.Marshal(m)
	if err != nil {
		writeError(w, http.StatusInternalServerError, pb.ErrorCode_ERROR_CODE_INTERNAL, "could not encode the answer")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeJSONBody answers v as JSON.
func writeJSONBody(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // URLs keep their '&'
	_ = enc.Encode(v)
}
