// Command firstmessage measures how long two people take, in the web client
// (gateway/web), to exchange a first message on a running Parley
// (`go tool task dev:first-message`, against `go tool task dev`). It opens
// two windows of the system's Chromium (two browser contexts: no shared
// storage), signs each in under a fresh name through the dev sign-in form,
// starts a direct chat from the first, sends a message, and waits until the
// second window shows it; then it prints the time from the first page load
// to the message seen, with the steps on the way.
//
// The gateway must serve the web client with dev tokens (dev does).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/chromedp/chromedp"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/", "the gateway's web client")
	browser := flag.String("chromium", os.Getenv("PARLEY_CHROMIUM"), "the browser to drive (default: chromium, chromium-browser or google-chrome on PATH)")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	r, err := run(ctx, *url, *browser)
	if err != nil {
		fmt.Fprintln(os.Stderr, "firstmessage:", err)
		os.Exit(1)
	}
	fmt.Println(r)
}

// result is what one run measured, each step as time since the first page
// load began.
type result struct {
	from, to   string
	browserUp  time.Duration // Chromium started (before the clock)
	signedIn   time.Duration // both windows signed in and online
	chatOpen   time.Duration // the sender's chat open
	sent       time.Duration // the sender's bubble sequenced (sent)
	seen       time.Duration // the message shown in the other window
	seenInChat time.Duration // the other window opened the chat and shows the bubble
}

func (r result) String() string {
	s := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
	return fmt.Sprintf("first message: %s from the first page load to %s seeing %s's message "+
		"(both signed in %s, chat open %s, sent %s, shown in %s's chat %s; Chromium started in %s before that)",
		s(r.seen), r.to, r.from, s(r.signedIn), s(r.chatOpen), s(r.sent), r.to, s(r.seenInChat), s(r.browserUp))
}

// run drives the two windows against the web client at url.
func run(ctx context.Context, url, browser string) (result, error) {
	var r result
	if browser == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				browser = p
				break
			}
		}
	}
	if browser == "" {
		return r, errors.New("no chromium on PATH: run 'go tool task tools:chromium' or pass -chromium")
	}
	url = strings.TrimSuffix(url, "/") + "/"
	dir, err := os.MkdirTemp("", "parley-firstmessage-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)

	t := time.Now()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1100, 720), chromedp.UserDataDir(dir))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	root, cancelRoot := chromedp.NewContext(alloc)
	defer cancelRoot()
	// The first run starts the browser, which lives as long as root: no
	// timeout on it; every later step is bounded by ctx.
	if err := chromedp.Do(root); err != nil {
		return r, fmt.Errorf("start %s: %w", browser, err)
	}
	r.browserUp = time.Since(t)

	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	r.from, r.to = "ann-"+hex.EncodeToString(suffix), "ben-"+hex.EncodeToString(suffix)
	a, err := window(root, r.from)
	if err != nil {
		return r, err
	}
	b, err := window(root, r.to)
	if err != nil {
		return r, err
	}

	start := time.Now()
	since := func() time.Duration { return time.Since(start) }
	// Both windows load and sign in at once, as two people would.
	errs := make(chan error, 2)
	for _, w := range []*win{a, b} {
		go func() { errs <- w.signIn(ctx, url) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			return r, err
		}
	}
	r.signedIn = since()

	if err := a.do(ctx, chromedp.Click(chromedp.CSS(`[data-testid=new-direct]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=new-peer]`), r.to),
		chromedp.Click(chromedp.CSS(`[data-testid=new-submit]`))); err != nil {
		return r, err
	}
	if err := a.wait(ctx, `document.querySelector('[data-testid=conversation]')?.dataset.conv`); err != nil {
		return r, err
	}
	r.chatOpen = since()
	text := "hello " + r.to + ", this is " + r.from
	if err := a.do(ctx, chromedp.SendKeys(chromedp.CSS(`[data-testid=composer]`), text),
		chromedp.Click(chromedp.CSS(`[data-testid=send]`))); err != nil {
		return r, err
	}
	bubble := fmt.Sprintf(`[...document.querySelectorAll('[data-testid=message]')].some((m) => m.dataset.seq && m.dataset.state === 'sent' && m.querySelector('[data-testid=message-text]')?.textContent === %q)`, text)
	type done struct {
		at  time.Duration
		err error
	}
	sent := make(chan done, 1)
	go func() {
		err := a.wait(ctx, bubble)
		sent <- done{since(), err}
	}()
	// The other window shows it first in its list (the preview), then in
	// the chat once opened.
	preview := fmt.Sprintf(`[...document.querySelectorAll('[data-testid=inbox-preview]')].some((p) => p.textContent === %q)`, text)
	if err := b.wait(ctx, preview); err != nil {
		return r, err
	}
	r.seen = since()
	d := <-sent
	if d.err != nil {
		return r, d.err
	}
	r.sent = d.at
	if err := b.do(ctx, chromedp.Click(chromedp.CSS(`[data-testid=inbox-item]`))); err != nil {
		return r, err
	}
	if err := b.wait(ctx, bubble); err != nil {
		return r, err
	}
	r.seenInChat = since()
	return r, nil
}

// win is one browser window: a browser context of its own.
type win struct {
	user string
	ctx  context.Context
}

func window(root context.Context, user string) (*win, error) {
	ctx, _ := chromedp.NewContext(root, chromedp.WithNewBrowserContext()) // ends with root
	if err := chromedp.Do(ctx); err != nil {
		return nil, fmt.Errorf("%s: open a window: %w", user, err)
	}
	return &win{user: user, ctx: ctx}, nil
}

// do runs steps in the window, bounded by ctx.
func (w *win) do(ctx context.Context, steps ...chromedp.Action[chromedp.Void]) error {
	c, cancel := bound(w.ctx, ctx)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		return fmt.Errorf("%s: %w", w.user, err)
	}
	return nil
}

// wait polls the JavaScript expression until it is truthy in the window.
func (w *win) wait(ctx context.Context, expr string) error {
	c, cancel := bound(w.ctx, ctx)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		return fmt.Errorf("%s: waiting for %s: %w", w.user, expr, err)
	}
	return nil
}

// signIn loads the client and signs in through the dev sign-in form.
func (w *win) signIn(ctx context.Context, url string) error {
	if err := w.do(ctx, chromedp.Navigate(url)); err != nil {
		return err
	}
	if err := w.wait(ctx, `document.querySelector('[data-testid=signin-user]') && document.querySelector('[data-testid=signin-submit]')`); err != nil {
		return fmt.Errorf("%w (does the gateway serve the web client with dev tokens?)", err)
	}
	if err := w.do(ctx, chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-user]`), w.user),
		chromedp.Click(chromedp.CSS(`[data-testid=signin-submit]`))); err != nil {
		return err
	}
	return w.wait(ctx, fmt.Sprintf(`document.querySelector('[data-testid=me]')?.textContent === %q && document.querySelector('[data-testid=conn]')?.dataset.state === 'online'`, w.user))
}

// bound is the window's context, ending when ctx does too.
func bound(w, ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(w)
	if d, ok := ctx.Deadline(); ok {
		c, cancel2 := context.WithDeadline(c, d)
		stop := context.AfterFunc(ctx, cancel)
		return c, func() { stop(); cancel2(); cancel() }
	}
	stop := context.AfterFunc(ctx, cancel)
	return c, func() { stop(); cancel() }
}
