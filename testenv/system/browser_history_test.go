package system_test

import (
	"fmt"
	"testing"

	pb "github.com/parley-im/parley/schemas/parleyv1"
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
	n := 0
	sent := func(text string) {
		t.Helper()
		n++
		bob.MustSend(conv, send(fmt.Sprintf("hist-%d", n), text))
		bob.WaitEvent("MessageSent "+text, func(e *pb.Event) bool {
			return e.GetConversationId() == conv && e.GetMessageSent().GetText() == text
		})
	}
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
	alice.checkOnce("before you came", "while you were in the list")
	if got := texts(alice.bubbles()); len(got) != 2 {
		alice.fail("shows %q, want the two messages", got)
	}
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
	if err := sys.StopComponent("projector"); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = sys.StartComponent("projector")
		}
	})
	conv := accepted(t, bob.MustDo("", direct("alice")))
	n := 0
	sent := func(text string) {
		t.Helper()
		n++
		bob.MustSend(conv, send(fmt.Sprintf("behind-%d", n), text))
		bob.WaitEvent("MessageSent "+text, func(e *pb.Event) bool {
			return e.GetConversationId() == conv && e.GetMessageSent().GetText() == text
		})
	}
	sent("written while the views slept")

	alice := signIn(t, browser, sys.GatewayURLs[0], "alice")
	sent("the one that came live")
	alice.waitFor(fmt.Sprintf(`document.querySelector('[data-testid=inbox-item][data-conv=%q] [data-testid=inbox-preview]')?.textContent === 'the one that came live'`, conv))
	alice.open(conv)
	alice.waitText("the one that came live")

	if err := sys.StartComponent("projector"); err != nil {
		t.Fatal(err)
	}
	restarted = true
	alice.waitText("written while the views slept")
	alice.checkOnce("written while the views slept", "the one that came live")
	if got := texts(alice.bubbles()); len(got) != 2 {
		alice.fail("shows %q, want the two messages", got)
	}
}

// TestBrowserHistoryQueryAway: alice opens the chat while query is down,
// so the page shows only what came live; once query is back the page reads
// the history by itself (it does not wait for her to open the chat again).
func TestBrowserHistoryQueryAway(t *testing.T) {
	browser := chromium(t)
	sys, _ := startWith(t, system.Options{Gateways: 1, DevTokens: true})
	bob := connect(t, sys, 0, "bob", "phone")
	conv := accepted(t, bob.MustDo("", direct("alice")))
	n := 0
	sent := func(text string) {
		t.Helper()
		n++
		bob.MustSend(conv, send(fmt.Sprintf("away-%d", n), text))
		bob.WaitEvent("MessageSent "+text, func(e *pb.Event) bool {
			return e.GetConversationId() == conv && e.GetMessageSent().GetText() == text
		})
	}
	sent("before query went away")
	alice := signIn(t, browser, sys.GatewayURLs[0], "alice")
	alice.unread(conv, 1)

	if err := sys.StopComponent("query"); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = sys.StartComponent("query")
		}
	})
	sent("while query was away")
	alice.unread(conv, 2)
	alice.open(conv)
	alice.waitText("while query was away")

	if err := sys.StartComponent("query"); err != nil {
		t.Fatal(err)
	}
	restarted = true
	alice.waitText("before query went away")
	alice.checkOnce("before query went away", "while query was away")
	if got := texts(alice.bubbles()); len(got) != 2 {
		alice.fail("shows %q, want the two messages", got)
	}
}
