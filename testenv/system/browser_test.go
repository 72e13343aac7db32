package system_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-im/parley/testenv/system"
)

// The web client (gateway/web) in headless Chromium, against the real
// system: every step is what a person does (type, click, reload), and
// every check reads the page through the DOM contract of
// gateway/web/README.md. Screenshots go to $PARLEY_SCREENSHOTS, or to the
// test's artifact directory (go test -artifacts keeps them).

// browserWait bounds one wait for the page to show something.
const browserWait = 90 * time.Second

// chromium starts one headless browser for the test. Debian's chromium
// package provides it ('go tool task tools:chromium'); without it the
// test skips.
func chromium(t *testing.T, flags ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := os.Getenv("PARLEY_CHROMIUM")
	if path == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		t.Skip("no chromium: run 'go tool task tools:chromium' (Debian's chromium package)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1100, 720), chromedp.UserDataDir(t.TempDir()))
	opts = append(opts, flags...)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start %s: %v", path, err)
	}
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// page is one person's tab, in a browser context of its own (its own
// localStorage, as a separate browser would have).
type page struct {
	t    *testing.T
	user string
	ctx  context.Context

	mu      sync.Mutex
	console []string // what the page wrote to its console, shown when the test fails
}

// signIn opens the client at gatewayURL in a new browser context and
// signs in as user through the dev sign-in form. Each setup runs on the
// new tab before the client is first loaded.
func signIn(t *testing.T, browser context.Context, gatewayURL, user string, setup ...func(*page)) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := openTab(t, ctx, user)
	for _, f := range setup {
		f(p)
	}
	p.do(chromedp.Navigate(gatewayURL + "/"))
	// The form renders once config.json has loaded; type into it only
	// then, so the node typed into is the one that stays.
	p.waitFor(`document.querySelector('[data-testid=signin-user]') && document.querySelector('[data-testid=signin-submit]')`)
	p.do(chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-user]`), user))
	p.do(chromedp.Click(chromedp.CSS(`[data-testid=signin-submit]`)))
	p.waitFor(fmt.Sprintf(`document.querySelector('[data-testid=me]')?.textContent === %q`, user))
	p.online()
	return p
}

// openTab makes the tab of the chromedp context ctx (a new one, in the
// browser context of its parent, when ctx is a child of a page's) and
// records its console.
func openTab(t *testing.T, ctx context.Context, user string) *page {
	t.Helper()
	p := &page{t: t, user: user, ctx: ctx}
	// The first run makes the tab; it lives as long as the context of
	// that run, so that one has no timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: open a tab: %v", user, err)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			line := m.Time.Format("15:04:05.000") + " " + m.String()
			if m.URL != "" {
				line += " (" + m.URL + ")"
			}
			p.mu.Lock()
			p.console = append(p.console, line)
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.fail("%v", err)
	}
}

// fail saves what the page shows, then fails the test.
func (p *page) fail(format string, args ...any) {
	p.t.Helper()
	p.screenshot("failed-" + p.user)
	p.mu.Lock()
	for _, line := range p.console {
		p.t.Logf("%s's console: %s", p.user, line)
	}
	p.mu.Unlock()
	p.t.Logf("%s's page: %s", p.user, p.state())
	p.t.Fatalf(p.user+": "+format, args...)
}

// state is what the page shows of its messages, and what its store keeps
// of its outbox and cursors, for a failure's log (best effort).
func (p *page) state() string {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		messages: [...document.querySelectorAll('[data-testid=message]')].slice(-12).map((m) => [m.dataset.seq, m.dataset.clientMsgId, m.dataset.state,
			m.querySelector('[data-testid=message-text]')?.textContent]),
		conn: document.querySelector('[data-testid=conn]')?.dataset.state,
		kept: Object.fromEntries(Object.keys(localStorage).filter((k) => /outbox|cursors/.test(k)).map((k) => [k, localStorage.getItem(k)?.slice(0, 2000)])),
	})`))
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return s
}

// waitFor waits until the JavaScript expression is truthy in the page.
func (p *page) waitFor(expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait+10*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(browserWait))); err != nil {
		p.fail("waiting for %s: %v", expr, err)
	}
}

// online waits for the connection indicator to say online.
func (p *page) online() {
	p.t.Helper()
	p.waitFor(`document.querySelector('[data-testid=conn]')?.dataset.state === 'online'`)
}

// bubble is one message as the page shows it.
type bubble struct {
	Seq         string `json:"seq"`
	ClientMsgID string `json:"clientMsgId"`
	Sender      string `json:"sender"`
	State       string `json:"state"`
	Receipt     string `json:"receipt"`
	Text        string `json:"text"`
	ReadBy      string `json:"readBy"`
}

// bubbles reads every message of the open conversation, in page order.
func (p *page) bubbles() []bubble {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](`JSON.stringify([...document.querySelectorAll('[data-testid=message]')].map((m) => ({
		seq: m.dataset.seq ?? '', clientMsgId: m.dataset.clientMsgId ?? '', sender: m.dataset.sender ?? '',
		state: m.dataset.state ?? '', receipt: m.dataset.receipt ?? '',
		text: m.querySelector('[data-testid=message-text]')?.textContent ?? '',
		readBy: m.querySelector('[data-testid=read-by]')?.textContent ?? '' })))`))
	if err != nil {
		p.fail("read messages: %v", err)
	}
	var s string
	var out []bubble
	if err := json.Unmarshal(raw, &s); err != nil || json.Unmarshal([]byte(s), &out) != nil {
		p.fail("decode messages %s: %v", raw, err)
	}
	return out
}

// waitText waits until a message with this text is sent (it has a seq).
func (p *page) waitText(text string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf(`[...document.querySelectorAll('[data-testid=message]')].some((m) => m.dataset.seq && m.dataset.state === 'sent' && m.querySelector('[data-testid=message-text]')?.textContent === %q)`, text))
}

// send types text into the composer and presses Send.
func (p *page) send(text string) {
	p.t.Helper()
	p.do(chromedp.SendKeys(chromedp.CSS(`[data-testid=composer]`), text),
		chromedp.Click(chromedp.CSS(`[data-testid=send]`)))
}

// unread waits until the inbox shows n unread for conv.
func (p *page) unread(conv string, n int) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf(`document.querySelector('[data-testid=inbox-item][data-conv=%q]')?.dataset.unread === %q`, conv, strconv.Itoa(n)))
}

// open clicks conv in the inbox and waits for it to show.
func (p *page) open(conv string) {
	p.t.Helper()
	sel := fmt.Sprintf(`[data-testid=inbox-item][data-conv=%q]`, conv)
	// The list re-renders as events arrive: a node found may be gone by
	// the time it is clicked. Clicking again is what a person would do.
	for attempt := 1; ; attempt++ {
		p.waitFor(fmt.Sprintf(`document.querySelector(%q)`, sel))
		ctx, cancel := context.WithTimeout(p.ctx, browserWait)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			break
		}
		if attempt == 5 || !strings.Contains(err.Error(), "Could not find node") {
			p.fail("open %s: %v", conv, err)
		}
	}
	p.waitFor(fmt.Sprintf(`document.querySelector('[data-testid=conversation]')?.dataset.conv === %q`, conv))
}

// newGroup makes a group in the page (members comma-separated) and
// returns its id once it is open.
func (p *page) newGroup(title, members string) string {
	p.t.Helper()
	p.do(chromedp.Click(chromedp.CSS(`[data-testid=new-group]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=new-title]`), title),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=new-members]`), members),
		chromedp.Click(chromedp.CSS(`[data-testid=new-submit]`)))
	return p.openConv()
}

// openConv is the id of the open conversation.
func (p *page) openConv() string {
	p.t.Helper()
	p.waitFor(`document.querySelector('[data-testid=conversation]')?.dataset.conv`)
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	id, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid=conversation]').dataset.conv`))
	if err != nil {
		p.fail("read the open conversation: %v", err)
	}
	return id
}

// screenshot saves the viewport as name.png.
func (p *page) screenshot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := os.Getenv("PARLEY_SCREENSHOTS")
	if dir == "" {
		dir = p.t.ArtifactDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(dir, name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p.t.Logf("screenshot %s", file)
}

// checkOnce: the open conversation shows each text exactly once, and its
// seqs are 1..n with no gap and no repeat, in order.
func (p *page) checkOnce(texts ...string) []bubble {
	p.t.Helper()
	bs := p.bubbles()
	count := map[string]int{}
	for i, b := range bs {
		count[b.Text]++
		if seq, err := strconv.Atoi(b.Seq); err != nil || seq != i+1 {
			p.fail("message %d %q has seq %q, want %d (all: %+v)", i, b.Text, b.Seq, i+1, bs)
		}
	}
	for _, text := range texts {
		if count[text] != 1 {
			p.fail("%q shown %d times, want once (all: %+v)", text, count[text], bs)
		}
	}
	return bs
}

// TestBrowserDirect: two people in two browser contexts, on two gateways,
// chat both ways; badges count and clear; read ticks; a reload keeps the
// history; bob's gateway goes down while alice sends and bob composes, and
// after it is back each message is there once.
func TestBrowserDirect(t *testing.T) {
	browser := chromium(t)
	sys, _ := startWith(t, system.Options{Gateways: 2, DevTokens: true})
	alice := signIn(t, browser, sys.GatewayURLs[0], "alice")
	bob := signIn(t, browser, sys.GatewayURLs[1], "bob")
	// alice is on a phone: one pane at a time, and a back button.
	alice.do(chromedp.EmulateViewport(390, 760, chromedp.EmulateMobile))

	alice.do(chromedp.Click(chromedp.CSS(`[data-testid=new-direct]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=new-peer]`), "bob"),
		chromedp.Click(chromedp.CSS(`[data-testid=new-submit]`)))
	conv := alice.openConv()
	alice.send("hello bob")
	alice.waitText("hello bob")

	// bob's badge counts alice's message, and opening the chat clears it
	// and marks it read on alice's side.
	bob.unread(conv, 1)
	bob.waitFor(fmt.Sprintf(`document.querySelector('[data-testid=inbox-item][data-conv=%q] [data-testid=inbox-preview]')?.textContent.includes('hello bob')`, conv))
	bob.open(conv)
	bob.waitText("hello bob")
	bob.unread(conv, 0)
	alice.waitFor(`[...document.querySelectorAll('[data-testid=message][data-sender=alice]')].every((m) => m.dataset.receipt === 'read')`)
	bob.waitFor(`document.querySelector('[data-testid=presence]')?.dataset.online === 'true'`)

	// The other way: alice leaves the chat, bob writes twice, alice's
	// badge says 2 until she opens it.
	alice.do(chromedp.Click(chromedp.CSS(`[data-testid=back]`)))
	alice.waitFor(`!document.querySelector('[data-testid=conversation]')`)
	bob.send("hi alice")
	bob.waitText("hi alice")
	bob.send("how are you?")
	bob.waitText("how are you?")
	alice.unread(conv, 2)
	alice.screenshot("phone-inbox")
	alice.open(conv)
	alice.waitText("how are you?")
	alice.unread(conv, 0)
	alice.send("fine, thanks")
	alice.waitText("fine, thanks")
	bob.waitText("fine, thanks")
	alice.screenshot("phone-conversation")
	before := []string{"hello bob", "hi alice", "how are you?", "fine, thanks"}
	alice.checkOnce(before...)

	// A reload keeps the history (and the sign-in).
	bob.do(chromedp.Reload())
	bob.online()
	bob.unread(conv, 0)
	bob.open(conv)
	bob.waitText("fine, thanks")
	bob.checkOnce(before...)

	// bob's gateway goes down. alice sends meanwhile; bob composes one
	// message offline. After the gateway is back, bob's client reconnects,
	// resumes and sends its queued message, and both sides hold every
	// message once, with dense seqs.
	if err := sys.StopComponent("gateway-1"); err != nil {
		t.Fatal(err)
	}
	bob.waitFor(`document.querySelector('[data-testid=conn]')?.dataset.state !== 'online'`)
	away := []string{"are you there?", "the network dropped", "call me"}
	for _, text := range away {
		alice.send(text)
		alice.waitText(text)
	}
	bob.send("typed while offline")
	bob.waitFor(`[...document.querySelectorAll('[data-testid=message]')].some((m) => m.dataset.state === 'pending' && m.querySelector('[data-testid=message-text]')?.textContent === 'typed while offline')`)
	bob.screenshot("offline")
	if err := sys.StartComponent("gateway-1"); err != nil {
		t.Fatal(err)
	}
	bob.online()
	all := append(append(slices.Clone(before), away...), "typed while offline")
	for _, text := range all {
		bob.waitText(text)
	}
	alice.waitText("typed while offline")
	bob.checkOnce(all...)
	alice.checkOnce(all...)
	alice.unread(conv, 0)
	bob.unread(conv, 0)
	if got := strings.Join(texts(bob.bubbles()), "|"); got != strings.Join(texts(alice.bubbles()), "|") {
		t.Errorf("bob shows %s, alice %s", got, strings.Join(texts(alice.bubbles()), "|"))
	}
}

// TestBrowserGroup: a group of three, made in the page; every message
// reaches the other two once; badges count and clear; "read by N" counts
// the members who read it.
func TestBrowserGroup(t *testing.T) {
	browser := chromium(t)
	sys, _ := startWith(t, system.Options{Gateways: 1, DevTokens: true})
	gw := sys.GatewayURLs[0]
	alice := signIn(t, browser, gw, "alice")
	bob := signIn(t, browser, gw, "bob")
	carol := signIn(t, browser, gw, "carol")
	// No VAPID key in config.json: no notifications offered.
	if alice.eval(`document.querySelector('[data-testid=push]')`) {
		alice.fail("a notifications control without a VAPID key")
	}

	conv := alice.newGroup("Launch", "bob, carol")
	alice.send("kick-off at ten")
	alice.waitText("kick-off at ten")
	for _, p := range []*page{bob, carol} {
		p.unread(conv, 1)
		p.waitFor(fmt.Sprintf(`document.querySelector('[data-testid=inbox-item][data-conv=%q] [data-testid=inbox-title]')?.textContent === 'Launch'`, conv))
	}
	bob.open(conv)
	bob.unread(conv, 0)
	alice.waitFor(`document.querySelector('[data-testid=message][data-sender=alice] [data-testid=read-by]')?.textContent === 'read by 1'`)
	bob.send("I'll be there")
	bob.waitText("I'll be there")
	carol.unread(conv, 2)
	carol.screenshot("inbox")
	carol.open(conv)
	carol.unread(conv, 0)
	alice.waitFor(`document.querySelector('[data-testid=message][data-sender=alice] [data-testid=read-by]')?.textContent === 'read by 2'`)
	carol.send("me too")
	carol.waitText("me too")
	want := []string{"kick-off at ten", "I'll be there", "me too"}
	for _, p := range []*page{alice, bob, carol} {
		for _, text := range want {
			p.waitText(text)
		}
		p.checkOnce(want...)
		p.unread(conv, 0)
	}
	alice.screenshot("conversation")
}

func texts(bs []bubble) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Text
	}
	return out
}
