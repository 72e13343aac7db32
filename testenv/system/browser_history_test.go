package system_test

import (
	"fmt"
	"testing"

	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// TestBrowserHistoryAfterLive: alice signs in with nothing kept in the
// browser, after bob has written to her once; his second message reaches
// her page live before she ever opened the chat. Opening it shows the whole
// history, each message once and in order: what came live does not stand
// in for the history the page never read.
func TestBrowserHistoryAfterLive(t *testing.T) {
	browser := chromium(t)
	sys, _ := startWith(t, system.Options{Gateways: 1, DevTokens: true})
	bob := connect(t, sys, 0, "bob", "phone")
	conv := accepted(t, bob.MustDo("", direct("alice")))
	sent := sender(t, bob, conv, "hist")
	sent("before you came")

	alice := signIn(t, browser, sys.GatewayURLs[0], "alice")
	sent("while you were in the list")
	// The live message reached the page: the badge counts it and the
	// preview shows it, and alice has not opened the chat.
	alice.waitFor(fmt.Sprintf(`document.querySelector('[data-testid=inbox-item][data-conv=%q] [data-testid=inbox-preview]')?.textContent === 'while you were in the list'`, conv))
	alice.unread(conv, 2)
	alice.open(conv)
	alice.waitText("before you came")
	alice.waitText("while you were in the list")
	alice.showsJust("before you came", "while you were in the list")
}

// TestBrowserHistoryViewsBehind: the same, with the views behind the log
// while it happens. The projector is stopped before bob writes, so alice's
// page learns the chat only from his live second message, and she opens it
// before the views hold anything of it; once the projector is back the page
// reads the history by itself and shows both messages once, in order.
func TestBrowserHistoryViewsBehind(t *testing.T) {
	browser := chromium(t)
	sys, _ := startWith(t, system.Options{Gateways: 1, DevTokens: true})
	bob := connect(t, sys, 0, "bob", "phone")
	restart := stopped(t, sys, "projector")
	conv := accepted(t, bob.MustDo("", direct("alice")))
	sent := sender(t, bob, conv, "behind")
	sent("written while the views slept")

	alice := signIn(t, browser, sys.GatewayURLs[0], "alice")
	sent("the one that came live")
	alice.waitFor(fmt.Sprintf(`document.querySelector('[data-testid=inbox-item][data-conv=%q] [data-testid=inbox-preview]')?.textContent === 'the one that came live'`, conv))
	alice.open(conv)
	alice.waitText("the one that came live")

	restart()
	alice.waitText("written while the views slept")
	alice.showsJust("written while the views slept", "the one that came live")
}

// TestBrowserHistoryQueryAway: alice opens the chat while query is down,
// so the page shows only what came live; once query is back the page reads
// the history by itself (it does not wait for her to open the chat again).
func TestBrowserHistoryQueryAway(t *testing.T) {
	browser := chromium(t)
	sys, _ := startWith(t, system.Options{Gateways: 1, DevTokens: true})
	bob := connect(t, sys, 0, "bob", "phone")
	conv := accepted(t, bob.MustDo("", direct("alice")))
	sent := sender(t, bob, conv, "away")
	sent("before query went away")
	alice := signIn(t, browser, sys.GatewayURLs[0], "alice")
	alice.unread(conv, 1)

	restart := stopped(t, sys, "query")
	sent("while query was away")
	alice.unread(conv, 2)
	alice.open(conv)
	alice.waitText("while query was away")

	restart()
	alice.waitText("before query went away")
	alice.showsJust("before query went away", "while query was away")
}

// sender is bob's send of a text to conv, waited for until he sees it
// decided; each gets the next clientMsgId of prefix.
func sender(t *testing.T, bob *testenv.WSClient, conv, prefix string) func(text string) {
	n := 0
	return func(text string) {
		t.Helper()
		n++
		bob.MustSend(conv, send(fmt.Sprintf("%s-%d", prefix, n), text))
		bob.WaitEvent("MessageSent "+text, func(e *pb.Event) bool {
			return e.GetConversationId() == conv && e.GetMessageSent().GetText() == text
		})
	}
}

// stopped stops a component of sys and gives the call that starts it
// again; one not started again by the test is started at its cleanup.
func stopped(t *testing.T, sys *system.System, component string) (restart func()) {
	t.Helper()
	if err := sys.StopComponent(component); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = sys.StartComponent(component)
		}
	})
	return func() {
		t.Helper()
		if err := sys.StartComponent(component); err != nil {
			t.Fatal(err)
		}
		restarted = true
	}
}

// showsJust: the page shows each of the texts once, in order, and nothing
// else.
func (p *page) showsJust(want ...string) {
	p.checkOnce(want...)
	if got := texts(p.bubbles()); len(got) != len(want) {
		p.fail("shows %q, want %q", got, want)
	}
}
