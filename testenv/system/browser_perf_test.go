package system_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// longConv is how many messages TestBrowserLongConversation seeds.
const longConv = 1000

// TestBrowserLongConversation: a conversation of 1,000 messages, written
// through the gateway and the log, opened in the page. It measures, in the
// page, the time from the click to the frame that shows the newest page,
// the time of each page back (scrolled to the top until all 1,000 are
// there), and the JS heap once all 1,000 are on screen, and logs them on one
// line. It asserts only what the page shows: every message once, in order.
func TestBrowserLongConversation(t *testing.T) {
	browser := chromium(t)
	// bob writes the history as fast as the log takes it: the per-device
	// rate limit (50/s by default) is lifted for him.
	sys, _ := startWith(t, system.Options{Gateways: 1, DevTokens: true,
		GatewayLimits: gateway.Limits{RatePerSecond: 1e6, Burst: 1e6, UserRatePerSecond: 1e6, UserBurst: 1e6}})
	bob := connect(t, sys, 0, "bob", "laptop")
	conv := accepted(t, bob.MustDo("", direct("alice")))
	text := func(i int) string { return fmt.Sprintf("message %d of the long conversation, to scroll through", i) }
	for from := 1; from <= longConv; from += 50 {
		var calls []*testenv.Call
		for i := from; i < from+50 && i <= longConv; i++ {
			calls = append(calls, bob.Go(conv, send(fmt.Sprintf("long-%d", i), text(i))))
		}
		if err := waitAccepted(calls, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	// The views hold all of it before alice looks.
	testenv.Eventually(t, 3*time.Minute, func() string {
		var h history
		if code := api(t, sys, "alice", "/v1/conversations/"+conv+"/messages?limit=1", &h); code != 200 || len(h.Messages) == 0 {
			return fmt.Sprintf("history: %d", code)
		}
		if h.Messages[0].Seq != longConv {
			return fmt.Sprintf("newest seq %d, want %d", h.Messages[0].Seq, longConv)
		}
		return ""
	})

	alice := signIn(t, browser, sys.GatewayURLs[0], "alice")
	alice.unread(conv, longConv)
	before := alice.heap()

	// The newest page: from the click to the frame that shows it.
	var first float64
	alice.evalAwait(fmt.Sprintf(`new Promise((done) => {
		const shown = () => {
			const l = document.querySelector('[data-testid=conversation] [role=log]');
			return l && l.querySelector('[data-testid=message][data-seq="%d"]') && l.querySelectorAll('[data-testid=message]').length >= 50;
		};
		const t0 = performance.now();
		document.querySelector('[data-testid=inbox-item][data-conv=%q]').click();
		const tick = () => (shown() ? requestAnimationFrame(() => done(performance.now() - t0)) : requestAnimationFrame(tick));
		requestAnimationFrame(tick);
	})`, longConv, conv), &first)

	// Paging back: scrolled to the top, again and again, each page timed
	// from the scroll to the frame that shows it.
	var back struct {
		Pages  []float64 `json:"pages"`
		Long   []float64 `json:"long"`
		Nudges int       `json:"nudges"`
		Stuck  string    `json:"stuck"`
	}
	alice.evalAwait(fmt.Sprintf(`(async () => {
		const l = document.querySelector('[data-testid=conversation] [role=log]');
		const count = () => l.querySelectorAll('[data-testid=message]').length;
		const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
		const pages = [];
		let nudges = 0;
		// main-thread tasks over 50 ms while paging: what a person would feel as jank
		const long = [];
		const obs = new PerformanceObserver((list) => list.getEntries().forEach((e) => long.push(e.duration)));
		obs.observe({ type: 'longtask' });
		while (count() < %d) {
			const n = count();
			const t0 = performance.now();
			l.scrollTop = 0;
			let last = t0;
			while (count() === n && performance.now() - t0 < 60000) {
				await frame();
				if (count() === n && performance.now() - last > 5000) {
					// nothing came (a fetch lost, say): scroll again, as a person would, and count it
					nudges++;
					last = performance.now();
					l.scrollTop = 200;
					await frame();
					l.scrollTop = 0;
				}
			}
			if (count() === n) return JSON.stringify({ pages, long, nudges, stuck: 'no page came in 60 s at ' + n + ' messages' });
			await frame();
			pages.push(performance.now() - t0);
		}
		await frame();
		obs.disconnect();
		return JSON.stringify({ pages, long, nudges, stuck: '' });
	})()`, longConv), &back)
	if back.Stuck != "" {
		alice.fail("paging back: %s", back.Stuck)
	}

	// Every message once, in order: seqs 1..1000 with their texts.
	bs := alice.bubbles()
	if len(bs) != longConv {
		alice.fail("shows %d messages, want %d", len(bs), longConv)
	}
	for i, b := range bs {
		if b.Seq != fmt.Sprint(i+1) || b.Text != text(i+1) {
			alice.fail("message %d shows seq %s %q, want seq %d %q", i, b.Seq, b.Text, i+1, text(i+1))
		}
	}
	after := alice.heap()

	pages := slices.Clone(back.Pages)
	slices.Sort(pages)
	total := 0.0
	for _, p := range pages {
		total += p
	}
	t.Logf("web client, %d-message conversation: newest page (50) shown %.0f ms after the click; "+
		"%d pages back (50 each) median %.0f ms, max %.0f ms, total %.0f ms, %d main-thread tasks over 50 ms (longest %.0f ms), %d scrolled again; "+
		"JS heap after GC %.1f MB with all %d on screen (%.1f MB before opening)",
		longConv, first, len(pages), pages[len(pages)/2], pages[len(pages)-1], total, len(back.Long), slices.Max(append([]float64{0}, back.Long...)), back.Nudges,
		after/1e6, longConv, before/1e6)
}

// evalAwait runs expr in the page, waits for the promise it returns, and
// decodes its value into out (a JSON string is decoded once more).
func (p *page) evalAwait(expr string, out any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Minute)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.fail("evaluate: %v", err)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		p.fail("decode %s: %v", raw, err)
	}
}

// heap is the page's used JS heap in bytes, after a garbage collection
// (DevTools' HeapProfiler.collectGarbage and Runtime.getHeapUsage).
func (p *page) heap() float64 {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	used, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (float64, error) {
		if err := t.Call(ctx, "HeapProfiler.collectGarbage", struct{}{}, &struct{}{}); err != nil {
			return 0, err
		}
		var h struct {
			UsedSize float64 `json:"usedSize"`
		}
		err := t.Call(ctx, "Runtime.getHeapUsage", struct{}{}, &h)
		return h.UsedSize, err
	})
	if err != nil {
		p.fail("heap usage: %v", err)
	}
	return used
}
