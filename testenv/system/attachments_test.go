package system_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/gateway/blob"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// testJPEG is a w×h JPEG of a gradient.
func testJPEG(t testing.TB, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x + y), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// oggCRC is the Ogg page checksum: CRC-32, polynomial 0x04c11db7, not
// reflected, initial value and final xor 0.
var oggTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

func oggCRC(b []byte) uint32 {
	var c uint32
	for _, x := range b {
		c = c<<8 ^ oggTable[byte(c>>24)^x]
	}
	return c
}

// oggPage is one Ogg page of packets (each under 255 bytes).
func oggPage(flags byte, granule uint64, seq uint32, packets ...[]byte) []byte {
	var b bytes.Buffer
	b.WriteString("OggS")
	b.WriteByte(0)
	b.WriteByte(flags)
	_ = binary.Write(&b, binary.LittleEndian, granule)
	_ = binary.Write(&b, binary.LittleEndian, uint32(0x5041524c)) // serial
	_ = binary.Write(&b, binary.LittleEndian, seq)
	_ = binary.Write(&b, binary.LittleEndian, uint32(0)) // CRC, set below
	b.WriteByte(byte(len(packets)))
	for _, p := range packets {
		b.WriteByte(byte(len(p)))
	}
	for _, p := range packets {
		b.Write(p)
	}
	out := b.Bytes()
	binary.LittleEndian.PutUint32(out[22:], oggCRC(out))
	return out
}

// testVoice is an Ogg Opus voice note of seconds seconds: the headers and
// 20 ms packets whose sizes rise and fall (nothing decodes them: the
// gateway reads durations and sizes only).
func testVoice(seconds int) []byte {
	const preSkip = 312
	head := append([]byte("OpusHead"), 1, 1)
	head = binary.LittleEndian.AppendUint16(head, preSkip)
	head = binary.LittleEndian.AppendUint32(head, 48000)
	head = append(head, 0, 0, 0)
	tags := append([]byte("OpusTags"), 6, 0, 0, 0)
	tags = append(tags, "parley"...)
	tags = append(tags, 0, 0, 0, 0)
	out := append(oggPage(2, 0, 0, head), oggPage(0, 0, 1, tags)...)
	packets := seconds * 50
	var granule uint64 = preSkip
	seq := uint32(2)
	for i := 0; i < packets; i += 10 {
		var ps [][]byte
		for j := i; j < min(i+10, packets); j++ {
			p := make([]byte, 20+(j*7)%200)
			p[0] = 0x78 // TOC: CELT 20 ms, one frame
			ps = append(ps, p)
			granule += 960
		}
		flags := byte(0)
		if i+10 >= packets {
			flags = 4
		}
		out = append(out, oggPage(flags, granule, seq, ps...)...)
		seq++
	}
	return out
}

// uploaded is what an upload answers.
type uploaded struct {
	status int
	att    *pb.Attachment
	err    *pb.Error
}

func upload(t *testing.T, sys *system.System, user, conv, name, contentType string, body io.Reader, size int64) uploaded {
	t.Helper()
	tok, _ := sys.Issuer.Issue(user, "phone", time.Hour)
	u := sys.GatewayURLs[0] + "/v1/conversations/" + conv + "/attachments?name=" + url.QueryEscape(name)
	req, _ := http.NewRequest(http.MethodPost, u, body)
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+tok)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := uploaded{status: resp.StatusCode}
	if resp.StatusCode/100 == 2 {
		var ua pb.UploadAttachment
		if err := protojson.Unmarshal(b, &ua); err != nil {
			t.Fatalf("upload %s: %d %s: %v", name, resp.StatusCode, b, err)
		}
		out.att = ua.GetAttachment()
		return out
	}
	out.err = &pb.Error{}
	if err := protojson.Unmarshal(b, out.err); err != nil {
		t.Fatalf("upload %s: %d %s: %v", name, resp.StatusCode, b, err)
	}
	return out
}

// fetch GETs path on the gateway (with user's token when user is not
// empty) and returns the status, headers and body.
func fetch(t *testing.T, sys *system.System, user, path string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, sys.GatewayURLs[len(sys.GatewayURLs)-1]+path, nil)
	if user != "" {
		tok, _ := sys.Issuer.Issue(user, "laptop", time.Hour)
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestE2EAttachments runs the whole of attachments against each blob
// store: the local directory and the S3 server testenv runs.
func TestE2EAttachments(t *testing.T) {
	t.Parallel()
	eachStore(t, testAttachments)
}

// testAttachments: alice uploads an image, a 50 MiB file and a voice note
// and sends them; bob sees them live, in history and in the inbox preview,
// and downloads each byte for byte, the thumbnail too, whole and by range,
// with his token and by signed URL; carol, no member, is refused at every
// URL; an expired signed URL is refused. An upload over the limit and a
// spoofed type are refused and store nothing. A recall makes the files
// unreachable. The views rebuilt from the log equal the live ones.
func testAttachments(t *testing.T, store blob.Store) {
	sys, live := startWith(t, system.Options{Gateways: 2, GatewayAttachments: gateway.Attachments{Store: store,
		MaxFileBytes: 60 << 20, StagingDir: t.TempDir()}})
	alice := connect(t, sys, 0, "alice", "phone")
	bob := connect(t, sys, 1, "bob", "phone")
	conv := accepted(t, alice.MustDo("", group("files", "bob")))
	bob.WaitEvent("the group", func(e *pb.Event) bool { return e.GetConversationId() == conv })

	photo := testJPEG(t, 1200, 800)
	big := make([]byte, 50<<20)
	_, _ = rand.Read(big)
	voice := testVoice(3)
	img := upload(t, sys, "alice", conv, "photo.jpg", "image/jpeg", bytes.NewReader(photo), int64(len(photo)))
	file := upload(t, sys, "alice", conv, "../report.bin", "", bytes.NewReader(big), int64(len(big)))
	note := upload(t, sys, "alice", conv, "note.opus", "audio/ogg", bytes.NewReader(voice), int64(len(voice)))
	for _, u := range []uploaded{img, file, note} {
		if u.status != http.StatusCreated {
			t.Fatalf("upload: %d %v, want 201", u.status, u.err)
		}
	}
	if a := img.att; a.GetKind() != pb.AttachmentKind_ATTACHMENT_KIND_IMAGE || a.GetContentType() != "image/jpeg" ||
		a.GetImage().GetWidth() != 1200 || a.GetImage().GetHeight() != 800 || a.GetThumbnail().GetWidth() != 320 || a.GetSha256() != sha(photo) {
		t.Errorf("image attachment %v", a)
	}
	if a := file.att; a.GetKind() != pb.AttachmentKind_ATTACHMENT_KIND_FILE || a.GetName() != "report.bin" || a.GetSize() != 50<<20 ||
		a.GetSha256() != sha(big) || a.GetContentType() != "application/octet-stream" {
		t.Errorf("file attachment %v", a)
	}
	if a := note.att; a.GetKind() != pb.AttachmentKind_ATTACHMENT_KIND_AUDIO || a.GetAudio().GetDurationMs() != 3000 ||
		len(a.GetAudio().GetWaveform()) == 0 {
		t.Errorf("voice attachment %v", a)
	}

	// Refusals, each storing nothing.
	for _, tc := range []struct {
		name, ct string
		body     []byte
		size     int64
		status   int
		code     pb.ErrorCode
	}{
		{"spoofed.png", "image/png", big[:4096], 4096, http.StatusUnsupportedMediaType, pb.ErrorCode_ERROR_CODE_UNSUPPORTED_MEDIA_TYPE},
		{"photo.pdf", "application/pdf", photo, int64(len(photo)), http.StatusUnsupportedMediaType, pb.ErrorCode_ERROR_CODE_UNSUPPORTED_MEDIA_TYPE},
		{"huge.bin", "", nil, 61 << 20, http.StatusRequestEntityTooLarge, pb.ErrorCode_ERROR_CODE_FILE_TOO_LARGE},
	} {
		var body io.Reader = bytes.NewReader(tc.body)
		if tc.body == nil {
			body = io.LimitReader(rand.Reader, tc.size)
		}
		if u := upload(t, sys, "alice", conv, tc.name, tc.ct, body, tc.size); u.status != tc.status || u.err.GetCode() != tc.code {
			t.Errorf("upload %s: %d %v, want %d %v", tc.name, u.status, u.err, tc.status, tc.code)
		}
	}
	key, _ := blob.Key("parley", sha(big[:4096]))
	if _, err := store.Stat(context.Background(), key); err == nil {
		t.Errorf("a refused upload was stored under %s", key)
	}
	// A stream longer than the limit, without a length, is cut off.
	if u := upload(t, sys, "alice", conv, "endless.bin", "", io.LimitReader(rand.Reader, 61<<20), -1); u.err.GetCode() != pb.ErrorCode_ERROR_CODE_FILE_TOO_LARGE {
		t.Errorf("unbounded upload: %d %v, want FILE_TOO_LARGE", u.status, u.err)
	}
	if u := upload(t, sys, "carol", conv, "x.jpg", "", bytes.NewReader(photo), int64(len(photo))); u.err.GetCode() != pb.ErrorCode_ERROR_CODE_NOT_MEMBER {
		t.Errorf("carol's upload: %d %v, want NOT_MEMBER", u.status, u.err)
	}

	// Sent: the file and the voice note, then the photo with a caption.
	id := func(u uploaded) string { return u.att.GetAttachmentId() }
	accepted(t, alice.MustDo(conv, &pb.SendMessage{ClientMsgId: "m1", AttachmentIds: []string{id(file), id(note)}}))
	accepted(t, alice.MustDo(conv, &pb.SendMessage{ClientMsgId: "m2", Text: "look", AttachmentIds: []string{id(img)}}))
	// bob's live copy carries them whole.
	ev := bob.WaitEvent("the photo", func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "m2" })
	if got := ev.GetMessageSent().GetAttachments(); len(got) != 1 || got[0].GetSha256() != sha(photo) || got[0].GetThumbnail() == nil {
		t.Fatalf("bob live: attachments %v", got)
	}
	// A sent attachment is sent once.
	f := alice.MustDo(conv, &pb.SendMessage{ClientMsgId: "m3", AttachmentIds: []string{id(img)}})
	accepted(t, f)
	rej := alice.WaitEvent("m3 refused", func(e *pb.Event) bool { return e.GetCommandRejected().GetClientMsgId() == "m3" })
	if rej.GetCommandRejected().GetCode() != pb.ErrorCode_ERROR_CODE_ATTACHMENT_NOT_FOUND {
		t.Errorf("a resend of a sent attachment: %v", rej)
	}

	// History and the inbox preview, once the views have them.
	type attItem struct {
		ID, Kind, SHA256 string
		Size             int64
		DownloadPath     string `json:"download_path"`
		Thumbnail        *struct {
			DownloadPath string `json:"download_path"`
		}
	}
	var page struct {
		Messages []struct {
			ClientMsgID string    `json:"client_msg_id"`
			Attachments []attItem `json:"attachments"`
		}
	}
	testenv.Eventually(t, time.Minute, func() string {
		api(t, sys, "bob", "/v1/conversations/"+conv+"/messages", &page)
		if len(page.Messages) < 2 {
			return fmt.Sprintf("history has %d messages", len(page.Messages))
		}
		return ""
	})
	byClient := map[string][]attItem{}
	for _, m := range page.Messages {
		byClient[m.ClientMsgID] = m.Attachments
	}
	if a := byClient["m1"]; len(a) != 2 || a[0].SHA256 != sha(big) || a[1].Kind != "audio" {
		t.Errorf("history m1: %+v", a)
	}
	if a := byClient["m2"]; len(a) != 1 || a[0].Thumbnail == nil || a[0].SHA256 != sha(photo) {
		t.Errorf("history m2: %+v", a)
	}
	var box struct {
		Conversations []struct {
			ConversationID string `json:"conversation_id"`
			Preview        struct {
				Text string `json:"text"`
			} `json:"preview"`
		} `json:"conversations"`
	}
	// The inbox is a view of its own: the history being current does not
	// make it so.
	testenv.Eventually(t, time.Minute, func() string {
		box.Conversations = nil
		api(t, sys, "bob", "/v1/inbox", &box)
		if len(box.Conversations) == 0 || box.Conversations[0].Preview.Text != "[image] look" {
			return fmt.Sprintf("bob's inbox: %+v, want the preview \"[image] look\"", box.Conversations)
		}
		return ""
	})

	// bob downloads each, byte for byte.
	paths := map[string][]byte{byClient["m1"][0].DownloadPath: big, byClient["m1"][1].DownloadPath: voice, byClient["m2"][0].DownloadPath: photo}
	for p, want := range paths {
		status, h, body := fetch(t, sys, "bob", p)
		if status != http.StatusOK || sha(body) != sha(want) || h.Get("ETag") != `"`+sha(want)+`"` {
			t.Errorf("bob GET %s: %d, %d bytes, ETag %s", p, status, len(body), h.Get("ETag"))
		}
	}
	status, h, body := fetch(t, sys, "bob", byClient["m1"][0].DownloadPath, "Range", "bytes=1000-1999")
	if status != http.StatusPartialContent || !bytes.Equal(body, big[1000:2000]) {
		t.Errorf("range: %d, %d bytes", status, len(body))
	}
	if cd := h.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") || !strings.Contains(cd, "report.bin") {
		t.Errorf("file Content-Disposition %q", cd)
	}
	if status, _, _ := fetch(t, sys, "bob", byClient["m1"][0].DownloadPath, "If-None-Match", `"`+sha(big)+`"`); status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", status)
	}
	status, h, thumb := fetch(t, sys, "bob", byClient["m2"][0].Thumbnail.DownloadPath)
	if status != http.StatusOK || h.Get("Content-Type") != "image/jpeg" || sha(thumb) != img.att.GetThumbnail().GetSha256() {
		t.Errorf("thumbnail: %d %s", status, h.Get("Content-Type"))
	} else if cfg, err := jpeg.DecodeConfig(bytes.NewReader(thumb)); err != nil || cfg.Width != 320 {
		t.Errorf("thumbnail decodes to %+v, %v", cfg, err)
	}

	// Signed URLs work without a token, for the user they were made for.
	var signed struct {
		URL          string    `json:"url"`
		ThumbnailURL string    `json:"thumbnail_url"`
		ExpiresAt    time.Time `json:"expires_at"`
	}
	status, _, body = fetch(t, sys, "bob", byClient["m2"][0].DownloadPath+"/url")
	if err := json.Unmarshal(body, &signed); status != http.StatusOK || err != nil || signed.ThumbnailURL == "" {
		t.Fatalf("signed URL: %d %s", status, body)
	}
	if status, _, body := fetch(t, sys, "", signed.URL); status != http.StatusOK || sha(body) != sha(photo) {
		t.Errorf("signed URL GET: %d", status)
	}
	if status, _, body := fetch(t, sys, "", signed.ThumbnailURL); status != http.StatusOK || sha(body) != sha(thumb) {
		t.Errorf("signed thumbnail URL GET: %d", status)
	}
	expired := gateway.SignedAttachmentPath(sys.Options().GatewayAttachments.URLKey, conv, id(img), "file", "bob", time.Now().Add(-time.Second))
	if status, _, _ := fetch(t, sys, "", expired); status != http.StatusForbidden {
		t.Errorf("expired signed URL: %d, want 403", status)
	}

	// carol is refused everywhere, with her token or bob's URL made hers.
	forged := strings.Replace(signed.URL, "u=bob", "u=carol", 1)
	for _, p := range []string{byClient["m1"][0].DownloadPath, byClient["m2"][0].Thumbnail.DownloadPath, byClient["m2"][0].DownloadPath + "/url"} {
		if status, _, _ := fetch(t, sys, "carol", p); status != http.StatusForbidden {
			t.Errorf("carol GET %s: %d, want 403", p, status)
		}
	}
	if status, _, _ := fetch(t, sys, "", forged); status != http.StatusForbidden {
		t.Errorf("carol with bob's URL: %d, want 403", status)
	}
	if status, _, _ := fetch(t, sys, "", strings.SplitN(signed.URL, "?", 2)[0]); status != http.StatusForbidden {
		t.Errorf("unsigned file URL: %d, want 403", status)
	}

	// A recall: the photo is no longer served, by token or by URL.
	accepted(t, alice.MustDo(conv, &pb.RecallMessage{Seq: ev.GetSeq()}))
	alice.WaitEvent("the photo deleted", func(e *pb.Event) bool {
		return e.GetAttachmentDeleted().GetAttachmentId() == id(img)
	})
	testenv.Eventually(t, time.Minute, func() string {
		if status, _, _ := fetch(t, sys, "bob", byClient["m2"][0].DownloadPath); status != http.StatusNotFound {
			return fmt.Sprintf("the recalled photo answers %d", status)
		}
		return ""
	})
	if status, _, _ := fetch(t, sys, "", signed.URL); status != http.StatusNotFound {
		t.Errorf("the recalled photo's signed URL: %d, want 404", status)
	}
	assertRebuildEqual(t, sys, live, "attachments", "attachment_blobs", "owner_attachments", "attachment_uploads")
}

// TestE2EForwardAttachments: bob forwards alice's photo, sent with no
// text, to a group carol is in and alice's is not. The copy is bob's: a
// new id, the same bytes stored once. carol downloads the file and its
// thumbnail byte for byte, but not the original. A recall of the original
// leaves the copy served; a recall of the forward stops it.
func TestE2EForwardAttachments(t *testing.T) {
	t.Parallel()
	store, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sys, live := startWith(t, system.Options{GatewayAttachments: gateway.Attachments{Store: store, StagingDir: t.TempDir()}})
	alice := connect(t, sys, 0, "alice", "phone")
	bob := connect(t, sys, 0, "bob", "phone")
	carol := connect(t, sys, 0, "carol", "phone")
	src := accepted(t, alice.MustDo("", group("photos", "bob")))
	dst := accepted(t, bob.MustDo("", group("elsewhere", "carol")))
	carol.WaitEvent("the target group", func(e *pb.Event) bool { return e.GetConversationId() == dst })

	photo := testJPEG(t, 900, 600)
	img := upload(t, sys, "alice", src, "beach.jpg", "image/jpeg", bytes.NewReader(photo), int64(len(photo)))
	if img.status != http.StatusCreated {
		t.Fatalf("upload: %d %v", img.status, img.err)
	}
	accepted(t, alice.MustDo(src, &pb.SendMessage{ClientMsgId: "p1", AttachmentIds: []string{img.att.GetAttachmentId()}}))
	orig := bob.WaitEvent("the photo", func(e *pb.Event) bool { return e.GetMessageSent().GetClientMsgId() == "p1" })

	// The forward reads the source message from the views; until they
	// hold it, it is refused as not found and sent again.
	var fwd *pb.Event
	testenv.Eventually(t, time.Minute, func() string {
		f := bob.MustDo(src, &pb.ForwardMessage{Seq: orig.GetSeq(), TargetConversationId: dst, ClientMsgId: "fw1"})
		if f.GetError() != nil {
			return fmt.Sprintf("forward: %v", f.GetError())
		}
		id := f.GetAccepted().GetCommandId()
		ev := bob.WaitEvent("the forward's outcome", func(e *pb.Event) bool {
			return e.GetCommandId() == id && (e.GetMessageSent() != nil || e.GetCommandRejected() != nil)
		})
		if r := ev.GetCommandRejected(); r != nil {
			return fmt.Sprintf("forward refused: %v", r)
		}
		fwd = ev
		return ""
	})
	gotEv := carol.WaitEvent("the forwarded photo", func(e *pb.Event) bool { return e.GetCommandId() == fwd.GetCommandId() })
	got := gotEv.GetMessageSent()
	if len(got.GetAttachments()) != 1 {
		t.Fatalf("carol got %v, want one attachment", got)
	}
	cp := got.GetAttachments()[0]
	if cp.GetAttachmentId() == img.att.GetAttachmentId() || cp.GetOwnerUserId() != "bob" || cp.GetSha256() != sha(photo) ||
		cp.GetThumbnail().GetSha256() != img.att.GetThumbnail().GetSha256() || got.GetForwardedFrom().GetConversationId() != src {
		t.Fatalf("the copy %v of %v", cp, img.att)
	}

	// carol downloads the copy and its thumbnail, byte for byte.
	type item struct {
		DownloadPath string `json:"download_path"`
		Thumbnail    *struct {
			DownloadPath string `json:"download_path"`
		}
	}
	var page struct {
		Messages []struct {
			Attachments []item `json:"attachments"`
		}
	}
	testenv.Eventually(t, time.Minute, func() string {
		api(t, sys, "carol", "/v1/conversations/"+dst+"/messages", &page)
		if len(page.Messages) == 0 || len(page.Messages[0].Attachments) != 1 || page.Messages[0].Attachments[0].Thumbnail == nil {
			return fmt.Sprintf("carol's history: %+v", page.Messages)
		}
		return ""
	})
	copyPath := page.Messages[0].Attachments[0].DownloadPath
	if status, _, body := fetch(t, sys, "carol", copyPath); status != http.StatusOK || sha(body) != sha(photo) {
		t.Fatalf("carol GET the copy: %d, %d bytes", status, len(body))
	}
	if status, _, body := fetch(t, sys, "carol", page.Messages[0].Attachments[0].Thumbnail.DownloadPath); status != http.StatusOK ||
		sha(body) != img.att.GetThumbnail().GetSha256() {
		t.Fatalf("carol GET the copy's thumbnail: %d", status)
	}
	origPath := "/v1/conversations/" + src + "/attachments/" + img.att.GetAttachmentId()
	if status, _, _ := fetch(t, sys, "carol", origPath); status != http.StatusForbidden {
		t.Errorf("carol GET the original: %d, want 403", status)
	}

	// The original recalled: gone at its own URL, the copy stays.
	accepted(t, alice.MustDo(src, &pb.RecallMessage{Seq: orig.GetSeq()}))
	testenv.Eventually(t, time.Minute, func() string {
		if status, _, _ := fetch(t, sys, "bob", origPath); status != http.StatusNotFound {
			return fmt.Sprintf("the recalled original answers %d", status)
		}
		return ""
	})
	if status, _, body := fetch(t, sys, "carol", copyPath); status != http.StatusOK || sha(body) != sha(photo) {
		t.Fatalf("the copy after the original's recall: %d", status)
	}
	// The forward recalled: the copy is deleted in the log and not served.
	accepted(t, bob.MustDo(dst, &pb.RecallMessage{Seq: gotEv.GetSeq()}))
	bob.WaitEvent("the copy deleted", func(e *pb.Event) bool {
		d := e.GetAttachmentDeleted()
		return d.GetAttachmentId() == cp.GetAttachmentId() && d.GetReason() == pb.AttachmentDeletedReason_ATTACHMENT_DELETED_REASON_RECALLED
	})
	testenv.Eventually(t, time.Minute, func() string {
		if status, _, _ := fetch(t, sys, "carol", copyPath); status != http.StatusNotFound {
			return fmt.Sprintf("the recalled copy answers %d", status)
		}
		return ""
	})
	assertRebuildEqual(t, sys, live, "attachments", "attachment_blobs", "owner_attachments", "attachment_uploads")
}

// eachStore runs test, in parallel, on each blob store: a local directory
// and a bucket of the S3 server testenv runs.
func eachStore(t *testing.T, test func(*testing.T, blob.Store)) {
	t.Run("dir", func(t *testing.T) {
		t.Parallel()
		store, err := blob.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		test(t, store)
	})
	t.Run("s3", func(t *testing.T) {
		t.Parallel()
		s3 := testenv.S3(t)
		store, err := blob.NewS3(context.Background(), blob.S3Config{Endpoint: s3.Endpoint, Bucket: s3.Bucket,
			AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Region: s3.Region})
		if err != nil {
			t.Fatal(err)
		}
		test(t, store)
	})
}
