package system_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/gateway/blob"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// TestBrowserAttachments: attachments in the web client, against the
// system (alice and bob on two gateways) with its attachments on a bucket
// of the S3 server testenv runs. alice attaches a photo through the file
// picker, watches it upload and sends it with a caption; bob sees the
// thumbnail load live and opens the whole image by keyboard. alice pastes
// a screenshot and drops a text file onto the conversation and sends both;
// bob sees the image and downloads the file through its link, byte for
// byte. After a reload history shows them all again; a photo sent while
// bob's gateway is down shows once his page has resumed. A file over the
// size limit is refused with its code and no Retry. Then a large
// upload loses its network midway: it shows as failed with Retry, the
// gateway holds part of it, and Retry continues from the gateway's offset
// (no new upload) to the end; the message arrives once, and bob downloads
// the whole file intact.
func TestBrowserAttachments(t *testing.T) {
	browser := chromium(t)
	s3 := testenv.S3(t)
	store, err := blob.NewS3(context.Background(), blob.S3Config{Endpoint: s3.Endpoint, Bucket: s3.Bucket,
		AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Region: s3.Region})
	if err != nil {
		t.Fatal(err)
	}
	sys, _ := startWith(t, system.Options{Gateways: 2, DevTokens: true,
		GatewayAttachments: gateway.Attachments{Store: store, StagingDir: t.TempDir(), MaxFileBytes: 64 << 20}})
	gw := sys.GatewayURLs[0]
	alice := signIn(t, browser, gw, "alice")
	bob := signIn(t, browser, sys.GatewayURLs[1], "bob")

	alice.do(chromedp.Click(chromedp.CSS(`[data-testid=new-direct]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=new-peer]`), "bob"),
		chromedp.Click(chromedp.CSS(`[data-testid=new-submit]`)))
	conv := alice.openConv()
	alice.send("photos coming")
	alice.waitText("photos coming")
	bob.unread(conv, 1)
	bob.open(conv)
	bob.waitText("photos coming")

	// The file picker: a 640×400 PNG made here.
	dir := t.TempDir()
	photo := filepath.Join(dir, "view.png")
	if err := os.WriteFile(photo, testPNG(t, 640, 400), 0o644); err != nil {
		t.Fatal(err)
	}
	alice.do(chromedp.SetUploadFiles(chromedp.CSS(`[data-testid=file-input]`), []string{photo}))
	alice.waitFor(staged("view.png") + `?.dataset.state === 'done' && ` + staged("view.png") + `.dataset.progress === '100'`)
	if alice.eval(`document.querySelector('[data-testid=send]').disabled`) {
		alice.fail("Send is disabled with an uploaded file in the composer")
	}
	alice.send("the view from here")
	alice.waitText("the view from here")
	alice.waitFor(`!document.querySelector('[data-testid=uploads]')`)

	// bob, live: the thumbnail (the gateway's, at most 320 px wide) loads;
	// opened, the whole image shows, 640 px wide.
	view := withText("the view from here")
	bob.waitFor(imageLoaded(view))
	if w := bob.number(view + `.querySelector('[data-testid=attachment-image]').naturalWidth`); w <= 0 || w > 320 {
		bob.fail("the thumbnail is %v px wide, want 1..320", w)
	}
	bob.waitFor(view + `.querySelector('[data-testid=attachment][data-kind=image]')?.dataset.name === 'view.png'`)
	// By keyboard: focus the image, Enter opens it, Escape closes it and
	// gives the focus back.
	bob.do(chromedp.Focus(chromedp.CSS(`[data-testid=message] [data-testid=attachment-open]`)), chromedp.KeyEvent(kb.Enter))
	bob.waitFor(`document.querySelector('[data-testid=viewer-image]')?.complete && document.querySelector('[data-testid=viewer-image]').naturalWidth === 640`)
	bob.screenshot("image-viewer")
	bob.do(chromedp.KeyEvent(kb.Escape))
	bob.waitFor(`!document.querySelector('[data-testid=image-viewer]') && document.activeElement?.dataset.testid === 'attachment-open'`)

	// A pasted screenshot and a dropped file, sent together with no caption.
	const notes = "meeting notes\nfirst: attachments\n"
	alice.text(`(async () => {
		const c = document.createElement('canvas'); c.width = 300; c.height = 200;
		const g = c.getContext('2d'); g.fillStyle = '#2457c5'; g.fillRect(0, 0, 300, 200); g.fillStyle = '#fff'; g.fillRect(40, 40, 120, 60);
		const blob = await new Promise((ok) => c.toBlob(ok, 'image/png'));
		const dt = new DataTransfer();
		dt.items.add(new File([blob], 'screenshot.png', { type: 'image/png' }));
		document.querySelector('[data-testid=composer]').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
		return 'pasted';
	})()`)
	alice.waitFor(staged("screenshot.png") + `?.dataset.state === 'done'`)
	alice.eval(fmt.Sprintf(`(() => {
		const dt = new DataTransfer();
		dt.items.add(new File([%q], 'notes.txt', { type: 'text/plain' }));
		const conv = document.querySelector('[data-testid=conversation]');
		conv.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
		conv.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
		return true;
	})()`, notes))
	alice.waitFor(staged("notes.txt") + `?.dataset.state === 'done'`)
	if alice.eval(`document.querySelector('[data-testid=composer]').value !== ''`) {
		alice.fail("the pasted image went into the composer's text")
	}
	alice.click(`[data-testid=send]`)
	pair := withAttachment("notes.txt")
	alice.waitFor(pair + `?.dataset.seq`)
	for _, p := range []*page{alice, bob} {
		p.waitFor(pair + `?.querySelectorAll('[data-testid=attachment]').length === 2`)
		p.waitFor(imageLoaded(pair))
	}
	link := pair + `.querySelector('[data-testid=attachment][data-kind=file] [data-testid=attachment-link]')`
	bob.waitFor(link + `?.getAttribute('href')`)
	if got := bob.text(link + `.textContent`); !strings.Contains(got, "notes.txt") {
		bob.fail("the file's link says %q", got)
	}
	if got, want := bob.text(pair+`.querySelector('[data-testid=attachment-size]').textContent`), strconv.Itoa(len(notes))+" B"; got != want {
		bob.fail("the file's size shows %q, want %q", got, want)
	}
	if got := bob.text(`fetch(` + link + `.href).then((r) => r.text())`); got != notes {
		bob.fail("the file downloaded through its link is %q, want %q", got, notes)
	}
	bob.waitFor(fmt.Sprintf(`document.querySelector('[data-testid=inbox-item][data-conv=%q] [data-testid=inbox-preview]')?.textContent === '[image] (+1)'`, conv))
	bob.screenshot("attachments")

	// From history: bob reloads, and the images load again.
	bob.do(chromedp.Reload())
	bob.online()
	bob.open(conv)
	bob.waitText("the view from here")
	bob.waitFor(imageLoaded(view))
	bob.waitFor(pair + `?.querySelectorAll('[data-testid=attachment]').length === 2`)
	bob.waitFor(imageLoaded(pair))
	bob.waitFor(link + `?.getAttribute('href')`)

	// On resume: bob's gateway is down while alice sends a photo; once it
	// is back his page resumes and shows it, loaded.
	if err := sys.StopComponent("gateway-1"); err != nil {
		t.Fatal(err)
	}
	bob.waitFor(`document.querySelector('[data-testid=conn]')?.dataset.state !== 'online'`)
	alice.do(chromedp.SetUploadFiles(chromedp.CSS(`[data-testid=file-input]`), []string{photo}))
	alice.waitFor(staged("view.png") + `?.dataset.state === 'done'`)
	alice.send("while you were away")
	alice.waitText("while you were away")
	if err := sys.StartComponent("gateway-1"); err != nil {
		t.Fatal(err)
	}
	bob.online()
	away := withText("while you were away")
	bob.waitFor(imageLoaded(away))

	// A file over the gateway's limit is refused at its creation, before
	// any byte: the reason shows with its code, no Retry is offered, Send
	// stays disabled, and × takes it out. (A sparse file: nothing is read.)
	huge := filepath.Join(dir, "huge.bin")
	if f, err := os.Create(huge); err != nil || f.Truncate(65<<20) != nil || f.Close() != nil {
		t.Fatalf("make a sparse file: %v", err)
	}
	alice.do(chromedp.SetUploadFiles(chromedp.CSS(`[data-testid=file-input]`), []string{huge}))
	alice.waitFor(staged("huge.bin") + `?.dataset.state === 'failed' && ` + staged("huge.bin") + `.querySelector('[data-testid=upload-error]').textContent.includes('FILE_TOO_LARGE')`)
	if alice.eval(staged("huge.bin")+`.querySelector('[data-testid=upload-retry]')`) || !alice.eval(`document.querySelector('[data-testid=send]').disabled`) {
		alice.fail("a refused file offers Retry, or lets the message be sent")
	}
	alice.click(uploadSel("huge.bin") + ` [data-testid=upload-remove]`)
	alice.waitFor(`!document.querySelector('[data-testid=uploads]')`)

	// A large upload loses its network midway. The uploads are slowed (so
	// that the cut lands in the middle), then cut.
	big := make([]byte, 12<<20)
	_, _ = rand.Read(big)
	bigFile := filepath.Join(dir, "archive.bin")
	if err := os.WriteFile(bigFile, big, 0o644); err != nil {
		t.Fatal(err)
	}
	reqs := alice.watchUploads()
	uploads := gw + "/v1/uploads/*"
	alice.network(&network.Conditions{URLPattern: uploads, UploadThroughput: 2 << 20, DownloadThroughput: -1})
	alice.do(chromedp.SetUploadFiles(chromedp.CSS(`[data-testid=file-input]`), []string{bigFile}))
	alice.waitFor(staged("archive.bin") + `?.dataset.state === 'uploading' && Number(` + staged("archive.bin") + `.dataset.sent) > 6 << 20`)
	alice.network(&network.Conditions{URLPattern: uploads, Offline: true, UploadThroughput: -1, DownloadThroughput: -1})
	alice.waitFor(staged("archive.bin") + `?.dataset.state === 'failed' && ` + staged("archive.bin") + `.querySelector('[data-testid=upload-retry]')`)
	alice.screenshot("upload-failed")
	loc := reqs.uploadURL()
	if loc == "" {
		t.Fatalf("no upload was created: %v", reqs.all())
	}
	tus := newTusClient(t, sys, "alice")
	have, a := tus.offset(loc)
	if a.status != 200 || have <= 0 || have >= int64(len(big)) {
		t.Fatalf("after the cut the gateway has %d of %d bytes (HEAD %d)", have, len(big), a.status)
	}
	t.Logf("the network was cut with %d of %d bytes at the gateway", have, len(big))
	before := reqs.count()
	alice.network()
	alice.click(uploadSel("archive.bin") + ` [data-testid=upload-retry]`)
	alice.waitFor(staged("archive.bin") + `?.dataset.state === 'done'`)
	after := reqs.since(before)
	if len(after) < 2 || after[0].method != "HEAD" || after[1].method != "PATCH" || after[1].offset != strconv.FormatInt(have, 10) {
		t.Fatalf("the retry sent %v, want a HEAD, then a PATCH from the gateway's offset %d", after, have)
	}
	for _, r := range after {
		if r.method == "POST" || r.url != loc {
			t.Fatalf("the retry started anew: %v (the upload is %s)", after, loc)
		}
	}
	alice.send("the whole archive")
	alice.waitText("the whole archive")
	arch := withText("the whole archive")
	bob.waitText("the whole archive")
	bob.waitFor(arch + `.querySelector('[data-testid=attachment][data-kind=file]')?.dataset.size === '` + strconv.Itoa(len(big)) + `'`)
	bob.waitFor(arch + `.querySelector('[data-testid=attachment-link]')?.getAttribute('href')`)
	digest := `fetch(` + arch + `.querySelector('[data-testid=attachment-link]').href).then((r) => r.arrayBuffer()).then((b) => crypto.subtle.digest('SHA-256', b)).then((d) => [...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, '0')).join(''))`
	if got := bob.text(digest); got != sha(big) {
		bob.fail("the archive bob downloads has SHA-256 %s, want %s", got, sha(big))
	}
	for _, p := range []*page{alice, bob} {
		p.checkOnce("photos coming", "the view from here", "while you were away", "the whole archive")
		if n := p.count(`[data-testid=message] [data-testid=attachment][data-name="archive.bin"]`); n != 1 {
			p.fail("the archive shows %d times, want once", n)
		}
	}
	alice.screenshot("attachments-sent")
}

// testPNG is a w×h PNG with a gradient.
func testPNG(t testing.TB, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 160, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// uploadSel selects the composer's entry of the file name.
func uploadSel(name string) string {
	return fmt.Sprintf(`[data-testid=upload][data-name=%q]`, name)
}

// staged is an expression for the composer's entry of the file name.
func staged(name string) string {
	return fmt.Sprintf(`document.querySelector('%s')`, uploadSel(name))
}

// withText is an expression for the sent message with this caption.
func withText(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('[data-testid=message]')].find((m) => m.dataset.seq && m.querySelector('[data-testid=message-text]')?.textContent === %q)`, text)
}

// withAttachment is an expression for the message with an attachment of
// this name.
func withAttachment(name string) string {
	return fmt.Sprintf(`document.querySelector('[data-testid=attachment][data-name=%q]')?.closest('[data-testid=message]')`, name)
}

// imageLoaded is true when the message msg's image has loaded.
func imageLoaded(msg string) string {
	return `(() => { const i = ` + msg + `?.querySelector('[data-testid=attachment-image]'); return i && i.complete && i.naturalWidth > 0; })()`
}

// number evaluates a JavaScript expression as a number.
func (p *page) number(expr string) float64 {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[float64](expr))
	if err != nil {
		p.fail("evaluate %s: %v", expr, err)
	}
	return n
}

// text evaluates a JavaScript expression (a promise is awaited) as a string.
func (p *page) text(expr string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.fail("evaluate %s: %v", expr, err)
	}
	return s
}

// network emulates these conditions for the tab's requests (none: the
// network as it is).
func (p *page) network(conds ...*network.Conditions) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	if conds == nil {
		conds = []*network.Conditions{}
	}
	if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: conds}); err != nil {
		p.fail("emulate network conditions: %v", err)
	}
}

// tusRequest is one request of the tus protocol the page sent.
type tusRequest struct{ method, url, offset string }

func (r tusRequest) String() string { return r.method + " " + r.url + " @" + r.offset }

// tusLog is what the page sent to the upload endpoints, in order.
type tusLog struct {
	mu   sync.Mutex
	reqs []tusRequest
}

// watchUploads records the page's requests to the upload endpoints from now on.
func (p *page) watchUploads() *tusLog {
	p.t.Helper()
	l := &tusLog{}
	err := chromedp.Listen(p.ctx, func(ev any) {
		e, ok := ev.(*network.EventRequestWillBeSent)
		if !ok || e.Request == nil || !(strings.Contains(e.Request.URL, "/v1/uploads/") || strings.HasSuffix(e.Request.URL, "/uploads")) {
			return
		}
		off, _ := e.Request.Headers["Upload-Offset"].(string)
		l.mu.Lock()
		l.reqs = append(l.reqs, tusRequest{e.Request.Method, e.Request.URL, off})
		l.mu.Unlock()
	})
	if err != nil {
		p.fail("listen: %v", err)
	}
	return l
}

func (l *tusLog) all() []tusRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]tusRequest(nil), l.reqs...)
}

func (l *tusLog) count() int { return len(l.all()) }

func (l *tusLog) since(n int) []tusRequest { return l.all()[n:] }

// uploadURL is the upload the page created (the URL its PATCHes go to).
func (l *tusLog) uploadURL() string {
	for _, r := range l.all() {
		if r.method == "PATCH" {
			return r.url
		}
	}
	return ""
}
