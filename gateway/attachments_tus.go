package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tus/tusd/v2/pkg/filestore"
	tus "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"

	expslog "golang.org/x/exp/slog"

	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/schemas/token"
)

// Resumable uploads speak tus 1.0 (https://tus.io/protocols/resumable-upload)
// through github.com/tus/tusd/v2: POST /v1/conversations/{c}/uploads creates
// an upload of a declared Upload-Length, HEAD /v1/uploads/{id} tells how
// many bytes arrived, PATCH /v1/uploads/{id} appends from that offset, and
// DELETE abandons it. The bytes wait in StagingDir/tus, on this gateway's
// disk, until the last PATCH completes them; then they take the path of a
// plain upload (prepare, the blob store, UploadAttachment) and that PATCH
// answers with the attachment. Every request carries the device's token,
// and an upload is the business of the user who created it only.
//
// tusd is the protocol's reference server, kept by the protocol's authors;
// Parley uses its handler and its file store and adds nothing to the
// protocol, so any tus client (tus-js-client, TUSKit, tus-android-client)
// works unchanged.

// Metadata keys a tus upload keeps (Upload-Metadata), set by the gateway
// at creation: the uploader and the conversation, and the file's name and
// declared type from the client's "filename" (or "name") and "filetype".
const (
	tusOwner    = "parley-owner"
	tusConv     = "parley-conversation"
	tusName     = "parley-name"
	tusDeclared = "parley-type"
)

// tusUploads serves the tus endpoints of one gateway.
type tusUploads struct {
	a     *attachments
	dir   string
	store filestore.FileStore
	h     *tus.UnroutedHandler
}

type identityKey struct{}

func newTusUploads(a *attachments) (*tusUploads, error) {
	dir := filepath.Join(a.cfg.StagingDir, "tus")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("gateway: tus staging directory: %w", err)
	}
	t := &tusUploads{a: a, dir: dir, store: filestore.New(dir)}
	composer := tus.NewStoreComposer()
	t.store.UseIn(composer)
	memorylocker.New().UseIn(composer)
	h, err := tus.NewUnroutedHandler(tus.Config{
		StoreComposer:             composer,
		BasePath:                  "/v1/uploads/",
		MaxSize:                   a.cfg.MaxFileBytes,
		DisableDownload:           true,
		DisableConcatenation:      true,
		Cors:                      &tus.CorsConfig{Disable: true},
		PreUploadCreateCallback:   t.created,
		PreFinishResponseCallback: t.finished,
		// tusd logs each request at Info, through golang.org/x/exp/slog.
		Logger:                           expslog.New(expslog.NewTextHandler(os.Stderr, &expslog.HandlerOptions{Level: expslog.LevelWarn})).With("part", "tus"),
		NetworkTimeout:                   time.Minute,
		AcquireLockTimeout:               10 * time.Second,
		RespectForwardedHeaders:          false,
		GracefulRequestCompletionTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: tus: %w", err)
	}
	t.h = h
	return t, nil
}

func (t *tusUploads) routes(mux *router) {
	mux.Handle("OPTIONS /v1/uploads/", t.h.Middleware(http.NotFoundHandler()))
	mux.Handle("OPTIONS /v1/conversations/{conversation}/uploads", t.h.Middleware(http.NotFoundHandler()))
	mux.Handle("POST /v1/conversations/{conversation}/uploads", t.authorised(false, t.h.PostFile))
	mux.Handle("HEAD /v1/uploads/{upload}", t.authorised(true, t.h.HeadFile))
	mux.Handle("PATCH /v1/uploads/{upload}", t.authorised(true, t.h.PatchFile))
	mux.Handle("DELETE /v1/uploads/{upload}", t.authorised(true, t.h.DelFile))
}

// authorised checks the token (and, for an existing upload, that it is the
// user's) before tusd sees the request, and passes the identity on in the
// request's context, where the callbacks find it.
func (t *tusUploads) authorised(existing bool, next http.HandlerFunc) http.Handler {
	// tusd reads the upload id as the whole path below its base path.
	inner := t.h.Middleware(http.StripPrefix("/v1/uploads/", next))
	if !existing {
		inner = t.h.Middleware(next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := t.a.authenticate(r)
		if err != nil {
			t.a.fail(w, err)
			return
		}
		if existing {
			if err := t.owned(r.Context(), r.PathValue("upload"), id.UserID); err != nil {
				t.a.fail(w, err)
				return
			}
		} else if err := t.admitCreate(r, id); err != nil {
			t.a.fail(w, err)
			return
		}
		inner.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

// owned refuses an upload that is not user's as if it did not exist, so
// upload ids cannot be probed.
func (t *tusUploads) owned(ctx context.Context, upload, user string) error {
	missing := refuse(http.StatusNotFound, pb.ErrorCode_ERROR_CODE_ATTACHMENT_NOT_FOUND, "no upload %s", upload)
	if upload == "" || strings.ContainsAny(upload, "/\\.") {
		return missing
	}
	u, err := t.store.GetUpload(ctx, upload)
	if err != nil {
		return missing
	}
	info, err := u.GetInfo(ctx)
	if err != nil || info.MetaData[tusOwner] != user {
		return missing
	}
	return nil
}

// admitCreate makes the checks a creation can make before any byte: the
// conversation, membership, the declared length against the file limit and
// the quota.
func (t *tusUploads) admitCreate(r *http.Request, id token.Identity) error {
	conv, err := pathConversation(r)
	if err != nil {
		return err
	}
	if r.Header.Get("Upload-Defer-Length") != "" || r.Header.Get("Upload-Length") == "" {
		return refuse(http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "a resumable upload declares its Upload-Length")
	}
	length, err := strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64)
	if err != nil || length < 0 {
		return refuse(http.StatusBadRequest, pb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "Upload-Length %q is not a size", r.Header.Get("Upload-Length"))
	}
	_, err = t.a.admit(r.Context(), id, conv, length)
	return err
}

// created fixes the metadata of a new upload: who, where, and the file's
// name and declared type, nothing else.
func (t *tusUploads) created(hook tus.HookEvent) (tus.HTTPResponse, tus.FileInfoChanges, error) {
	id, ok := hook.Context.Value(identityKey{}).(token.Identity)
	if !ok {
		return tus.HTTPResponse{}, tus.FileInfoChanges{}, tusError(errors.New("no identity on a tus creation"))
	}
	conv := conversationOfUploadsPath(hook.HTTPRequest.URI)
	md := hook.Upload.MetaData
	name := md["filename"]
	if name == "" {
		name = md["name"]
	}
	return tus.HTTPResponse{}, tus.FileInfoChanges{MetaData: tus.MetaData{
		tusOwner: id.UserID, tusConv: conv, tusName: name, tusDeclared: md["filetype"],
	}}, nil
}

// conversationOfUploadsPath reads {c} of /v1/conversations/{c}/uploads.
func conversationOfUploadsPath(uri string) string {
	p, _, _ := strings.Cut(uri, "?")
	p = strings.TrimPrefix(p, "/v1/conversations/")
	c, _, _ := strings.Cut(p, "/")
	return c
}

// finished runs when the last byte of an upload arrived, before the last
// PATCH is answered: the bytes become an attachment like a plain upload's,
// and the answer carries it. The upload's files are removed whatever the
// outcome: a refused file is not kept, and an accepted one is in the blob
// store.
func (t *tusUploads) finished(hook tus.HookEvent) (tus.HTTPResponse, error) {
	info := hook.Upload
	defer t.remove(info.ID)
	id, ok := hook.Context.Value(identityKey{}).(token.Identity)
	if !ok {
		return tus.HTTPResponse{}, tusError(errors.New("no identity on a tus upload"))
	}
	ctx := hook.Context
	md := info.MetaData
	conv := md[tusConv]
	st, err := hashStaged(info.Storage["Path"], info.Size)
	if err != nil {
		return tus.HTTPResponse{}, tusError(err)
	}
	declared := ""
	if ct := md[tusDeclared]; ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil {
			declared = mt
		}
	}
	used, err := t.a.admit(ctx, id, conv, st.size)
	if err != nil {
		t.a.countRefusal(err)
		return tus.HTTPResponse{}, tusError(err)
	}
	att, status, err := t.a.record(ctx, id, conv, st, used, md[tusName], declared)
	if err != nil {
		t.a.countRefusal(err)
		return tus.HTTPResponse{}, tusError(err)
	}
	body, err := jsonOut.Marshal(&pb.UploadAttachment{Attachment: att})
	if err != nil {
		return tus.HTTPResponse{}, tusError(err)
	}
	return tus.HTTPResponse{StatusCode: status, Body: string(body) + "\n", Header: tus.HTTPHeader{
		"Content-Type": "application/json",
		"Location":     "/v1/conversations/" + conv + "/attachments/" + att.GetAttachmentId(),
	}}, nil
}

// hashStaged reads the digest of a complete tus upload.
func hashStaged(path string, size int64) (*staged, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, err
	}
	if n != size {
		return nil, fmt.Errorf("the tus upload holds %d bytes, not %d", n, size)
	}
	return &staged{path: path, size: n, sha256: hex.EncodeToString(h.Sum(nil))}, nil
}

// remove deletes the files of upload id.
func (t *tusUploads) remove(id string) {
	_ = os.Remove(filepath.Join(t.dir, id))
	_ = os.Remove(filepath.Join(t.dir, id+".info"))
}

// sweep removes the uploads nobody continued for longer than maxAge (the
// last write to their bytes).
func (t *tusUploads) sweep(maxAge time.Duration) (removed int, err error) {
	entries, err := os.ReadDir(t.dir)
	if err != nil {
		return 0, err
	}
	cutoff := time.Now().Add(-maxAge)
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".info")
		if !ok {
			continue
		}
		fi, err := os.Stat(filepath.Join(t.dir, id))
		if err != nil {
			fi, err = e.Info()
			if err != nil {
				continue
			}
		}
		if fi.ModTime().Before(cutoff) {
			t.remove(id)
			removed++
		}
	}
	return removed, nil
}

// tusError turns a refusal into an error tusd answers with Parley's JSON
// error body; anything else is UNAVAILABLE, as for a plain upload.
func tusError(err error) error {
	var he *httpError
	if !errors.As(err, &he) {
		he = refuse(http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "the attachment could not be stored or read; retry")
	}
	b, _ := jsonOut.Marshal(&pb.Error{Code: he.code, Message: he.msg})
	return tus.Error{ErrorCode: he.code.String(), Message: he.msg, HTTPResponse: tus.HTTPResponse{
		StatusCode: he.status, Body: string(b) + "\n", Header: tus.HTTPHeader{"Content-Type": "application/json"},
	}}
}
