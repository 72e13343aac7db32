package system_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parley-im/parley/testenv/system"
)

// TestBrowserActions: what members do to a group and to its messages, in
// the page, seen live by the others. A group of three: its owner adds a
// fourth member and removes one (the removed one's page says so and shows
// nothing after it; the added one gets the group and its history); a plain
// member is offered no removal; refusals show their code. Then an edit and
// a recall, a reaction toggled, and a reply with its quote.
func TestBrowserActions(t *testing.T) {
	browser := chromium(t)
	sys, _ := startWith(t, system.Options{Gateways: 1, DevTokens: true})
	gw := sys.GatewayURLs[0]
	alice := signIn(t, browser, gw, "alice")
	bob := signIn(t, browser, gw, "bob")
	carol := signIn(t, browser, gw, "carol")
	dave := signIn(t, browser, gw, "dave")
	// bob is on a phone.
	bob.do(chromedp.EmulateViewport(390, 760, chromedp.EmulateMobile))

	conv := alice.newGroup("Crew", "bob, carol")
	alice.send("welcome, crew")
	alice.waitText("welcome, crew")
	for _, p := range []*page{bob, carol} {
		p.unread(conv, 1)
		p.open(conv)
		p.waitText("welcome, crew")
	}

	// The members panel: alice owns the group and may remove either
	// member; bob, a plain member, sees the roles and is offered no removal.
	alice.click(`[data-testid=members-toggle]`)
	alice.waitFor(member("alice") + `?.dataset.role === 'owner'`)
	alice.waitFor(member("bob") + `?.querySelector('[data-testid=member-remove]') && ` + member("carol") + `?.querySelector('[data-testid=member-remove]')`)
	alice.waitFor(`!` + member("alice") + `.querySelector('[data-testid=member-remove]')`)
	bob.click(`[data-testid=members-toggle]`)
	bob.waitFor(member("alice") + `?.dataset.role === 'owner' && ` + member("bob") + `?.dataset.role === 'member' && ` + member("carol") + `?.dataset.role === 'member'`)
	if n := bob.count(`[data-testid=members-panel] [data-testid=member-remove]`); n != 0 {
		bob.fail("a plain member is offered %d removals", n)
	}
	if n := bob.count(`[data-testid=members-panel] [data-testid=leave]`); n != 1 {
		bob.fail("leave offered %d times, want once", n)
	}

	// Refusals show their code: a malformed id is refused by the gateway,
	// a user already in the group by the decider.
	alice.addMember(strings.Repeat("x", 129))
	alice.waitFor(`document.querySelector('[data-testid=action-error]')?.dataset.code === 'INVALID_ID'`)
	alice.click(`[data-testid=action-error-dismiss]`)
	alice.waitFor(`!document.querySelector('[data-testid=action-error]')`)
	alice.addMember("bob")
	alice.waitFor(`document.querySelector('[data-testid=action-error]')?.dataset.code === 'INVALID_ARGUMENT' && document.querySelector('[data-testid=action-error]').textContent.includes('INVALID_ARGUMENT')`)
	alice.click(`[data-testid=action-error-dismiss]`)

	// alice adds dave: everyone's panel lists him, and dave gets the group
	// with its history.
	alice.addMember("dave")
	alice.waitFor(member("dave") + `?.dataset.role === 'member'`)
	bob.waitFor(member("dave") + `?.dataset.role === 'member'`)
	alice.waitFor(notice("alice added dave"))
	dave.waitFor(fmt.Sprintf(`document.querySelector('[data-testid=inbox-item][data-conv=%q] [data-testid=inbox-title]')?.textContent === 'Crew'`, conv))
	dave.open(conv)
	dave.waitText("welcome, crew")
	dave.waitFor(notice("alice added dave"))

	// alice removes carol: carol's page says so, and shows nothing said
	// after it; the others' panels drop her.
	alice.click(memberSel("carol") + ` [data-testid=member-remove]`)
	carol.waitFor(`document.querySelector('[data-testid=left]')?.textContent.includes('alice removed you')`)
	carol.waitFor(`!document.querySelector('[data-testid=composer]')`)
	carol.waitFor(fmt.Sprintf(`document.querySelector('[data-testid=inbox-item][data-conv=%q]')?.dataset.left === 'true'`, conv))
	for _, p := range []*page{alice, bob} {
		p.waitFor(`!` + member("carol"))
		p.waitFor(notice("alice removed carol"))
	}
	alice.send("carol has moved on")
	for _, p := range []*page{alice, bob, dave} {
		p.waitText("carol has moved on")
	}
	if carol.count(`[data-testid=message]`) != 1 || !carol.eval(`document.querySelector('[data-testid=message] [data-testid=message-text]')?.textContent === 'welcome, crew'`) {
		carol.fail("after her removal carol's page shows %+v", carol.bubbles())
	}
	carol.screenshot("removed")
	alice.screenshot("members")
	for _, p := range []*page{alice, bob, dave} {
		p.onceEach("welcome, crew", "carol has moved on")
	}

	// alice edits a message: bob and dave see the new text, marked
	// edited, live. bob is offered neither edit nor recall of it.
	alice.send("meet at ten")
	bob.waitText("meet at ten")
	meet := alice.seqOf("meet at ten")
	alice.click(msgSel(meet) + ` [data-testid=msg-actions]`)
	alice.click(msgSel(meet) + ` [data-testid=edit]`)
	alice.waitFor(fmt.Sprintf(`document.querySelector('[data-testid=edit-draft]')?.dataset.seq === %q && document.querySelector('[data-testid=composer]').value === 'meet at ten'`, meet))
	alice.clear(`[data-testid=composer]`)
	alice.send("meet at eleven")
	for _, p := range []*page{alice, bob, dave} {
		p.waitFor(msgExpr(meet) + `?.querySelector('[data-testid=message-text]').textContent === 'meet at eleven' && ` + msgExpr(meet) + `.querySelector('[data-testid=edited]')`)
	}
	alice.waitFor(`!document.querySelector('[data-testid=edit-draft]') && document.querySelector('[data-testid=composer]').value === ''`)
	bob.click(msgSel(meet) + ` [data-testid=msg-actions]`)
	bob.waitFor(msgExpr(meet) + `?.querySelector('[data-testid=msg-menu]')`)
	if n := bob.count(msgSel(meet) + ` [data-testid=edit], ` + msgSel(meet) + ` [data-testid=recall]`); n != 0 {
		bob.fail("bob is offered %d edit or recall buttons on alice's message", n)
	}
	bob.click(msgSel(meet) + ` [data-testid=msg-actions]`)

	// bob recalls his own message: the others see "message recalled" live.
	bob.send("oops, wrong group")
	alice.waitText("oops, wrong group")
	oops := bob.seqOf("oops, wrong group")
	bob.click(msgSel(oops) + ` [data-testid=msg-actions]`)
	bob.click(msgSel(oops) + ` [data-testid=recall]`)
	bob.click(msgSel(oops) + ` [data-testid=recall-confirm]`)
	for _, p := range []*page{alice, bob, dave} {
		p.waitFor(msgExpr(oops) + `?.dataset.recalled === 'true' && ` + msgExpr(oops) + `.querySelector('[data-testid=message-text]').textContent === 'message recalled'`)
	}
	if alice.eval(`document.body.textContent.includes('oops, wrong group')`) {
		alice.fail("the recalled text is still on the page")
	}

	// Reactions: bob picks 👍 from the menu, dave adds his by the chip,
	// bob takes his off again; everyone sees each count live.
	bob.click(msgSel(meet) + ` [data-testid=msg-actions]`)
	bob.click(msgSel(meet) + ` [data-testid=react][data-emoji="👍"]`)
	for _, p := range []*page{alice, bob, dave} {
		p.waitFor(reaction(meet, "👍") + `?.dataset.count === '1'`)
	}
	bob.waitFor(reaction(meet, "👍") + `.dataset.mine === 'true'`)
	dave.waitFor(reaction(meet, "👍") + `.dataset.mine === 'false'`)
	dave.click(msgSel(meet) + ` [data-testid=reaction][data-emoji="👍"]`)
	for _, p := range []*page{alice, bob, dave} {
		p.waitFor(reaction(meet, "👍") + `?.dataset.count === '2'`)
	}
	bob.click(msgSel(meet) + ` [data-testid=reaction][data-emoji="👍"]`)
	for _, p := range []*page{alice, bob, dave} {
		p.waitFor(reaction(meet, "👍") + `?.dataset.count === '1' && ` + reaction(meet, "👍") + `.title === 'dave'`)
	}

	// A reply: dave answers alice's message; every page shows it with the
	// quote of what it answers.
	dave.click(msgSel(meet) + ` [data-testid=msg-actions]`)
	dave.click(msgSel(meet) + ` [data-testid=reply]`)
	dave.waitFor(fmt.Sprintf(`document.querySelector('[data-testid=reply-draft]')?.dataset.seq === %q`, meet))
	dave.send("eleven works")
	dave.waitFor(`!document.querySelector('[data-testid=reply-draft]')`)
	for _, p := range []*page{alice, bob, dave} {
		p.waitText("eleven works")
		p.waitFor(quoteOf("eleven works", meet) + `?.textContent.includes('meet at eleven')`)
	}

	// A mention by autocomplete: alice types "@d", picks dave with Tab (a
	// synthetic Enter also types its newline) and sends; dave's page marks the message as mentioning him, bob's
	// does not.
	alice.do(chromedp.SendKeys(chromedp.CSS(`[data-testid=composer]`), "@d"))
	alice.waitFor(`[...document.querySelectorAll('[data-testid=mention-option]')].map((o) => o.dataset.user).join() === 'dave'`)
	alice.do(chromedp.SendKeys(chromedp.CSS(`[data-testid=composer]`), kb.Tab))
	alice.waitFor(`document.querySelector('[data-testid=composer]').value === '@dave ' && !document.querySelector('[data-testid=mention-list]')`)
	alice.send("see you there")
	for _, p := range []*page{alice, bob, dave} {
		p.waitText("@dave see you there")
	}
	mention := alice.seqOf("@dave see you there")
	dave.waitFor(msgExpr(mention) + `?.dataset.mentioned === 'true' && ` + msgExpr(mention) + `.querySelector('[data-testid=mention][data-user=dave]')`)
	bob.waitFor(msgExpr(mention) + `?.querySelector('[data-testid=mention][data-user=dave]') && !` + msgExpr(mention) + `.dataset.mentioned`)
	alice.screenshot("reactions-replies")

	// After a reload, history shows the same: the edit marked, the recall,
	// the reaction, the reply's quote, the mention.
	dave.do(chromedp.Reload())
	dave.online()
	dave.open(conv)
	dave.waitFor(msgExpr(meet) + `?.querySelector('[data-testid=message-text]').textContent === 'meet at eleven' && ` + msgExpr(meet) + `.querySelector('[data-testid=edited]')`)
	dave.waitFor(msgExpr(oops) + `?.dataset.recalled === 'true'`)
	dave.waitFor(reaction(meet, "👍") + `?.dataset.count === '1' && ` + reaction(meet, "👍") + `.dataset.mine === 'true'`)
	dave.waitFor(quoteOf("eleven works", meet) + `?.textContent.includes('meet at eleven')`)
	dave.waitFor(msgExpr(mention) + `?.dataset.mentioned === 'true'`)
	alice.screenshot("edited-recalled")
}

// reaction is an expression for the reaction chip emoji of the message at
// seq.
func reaction(seq, emoji string) string {
	return fmt.Sprintf(`document.querySelector('[data-testid=message][data-seq=%q] [data-testid=reaction][data-emoji=%q]')`, seq, emoji)
}

// quoteOf is an expression for the quote in the message with text,
// when it quotes the message at seq.
func quoteOf(text, seq string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('[data-testid=message]')].find((m) => m.querySelector('[data-testid=message-text]')?.textContent === %q)?.querySelector('[data-testid=reply-quote][data-reply-seq=%q]')`, text, seq)
}

// msgSel selects the message at seq.
func msgSel(seq string) string {
	return fmt.Sprintf(`[data-testid=message][data-seq=%q]`, seq)
}

// msgExpr is an expression for the message at seq.
func msgExpr(seq string) string {
	return fmt.Sprintf(`document.querySelector('%s')`, msgSel(seq))
}

// seqOf is the seq of the sent message with text.
func (p *page) seqOf(text string) string {
	p.t.Helper()
	p.waitText(text)
	for _, b := range p.bubbles() {
		if b.Text == text {
			return b.Seq
		}
	}
	p.fail("no message %q", text)
	return ""
}

// onceEach: the open conversation shows each text exactly once, and its
// messages in increasing seq order, none twice (member notices take seqs
// between them).
func (p *page) onceEach(texts ...string) []bubble {
	p.t.Helper()
	bs := p.bubbles()
	count := map[string]int{}
	last := 0
	for i, b := range bs {
		count[b.Text]++
		seq, err := strconv.Atoi(b.Seq)
		if err != nil || seq <= last {
			p.fail("message %d %q has seq %q after %d (all: %+v)", i, b.Text, b.Seq, last, bs)
		}
		last = seq
	}
	for _, text := range texts {
		if count[text] != 1 {
			p.fail("%q shown %d times, want once (all: %+v)", text, count[text], bs)
		}
	}
	return bs
}

// memberSel selects the members panel's row of user.
func memberSel(user string) string {
	return fmt.Sprintf(`[data-testid=members-panel] [data-testid=member][data-user=%q]`, user)
}

// member is an expression for the members panel's row of user.
func member(user string) string {
	return fmt.Sprintf(`document.querySelector('%s')`, memberSel(user))
}

// notice is an expression true when the timeline shows a notice with text.
func notice(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('[data-testid=notice]')].some((n) => n.textContent === %q)`, text)
}

// click clicks the first element sel matches, once it is there.
func (p *page) click(sel string) {
	p.t.Helper()
	p.do(chromedp.Click(chromedp.CSS(sel)))
}

// addMember types ids into the members panel's add field (emptied
// first) and submits it.
func (p *page) addMember(ids string) {
	p.t.Helper()
	p.clear(`[data-testid=add-member]`)
	p.do(chromedp.SendKeys(chromedp.CSS(`[data-testid=add-member]`), ids),
		chromedp.Click(chromedp.CSS(`[data-testid=add-member-submit]`)))
}

// clear empties the input or textarea sel matches, as a person deleting
// its text would (the page hears an input event).
func (p *page) clear(sel string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf(`document.querySelector(%q)`, sel))
	p.eval(fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.value = ''; el.dispatchEvent(new Event('input', { bubbles: true })); return true; })()`, sel))
}

// eval evaluates a JavaScript expression in the page, as a boolean.
func (p *page) eval(expr string) bool {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+expr+`)`))
	if err != nil {
		p.fail("evaluate %s: %v", expr, err)
	}
	return ok
}

// count is how many elements sel matches now.
func (p *page) count(sel string) int {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		p.fail("count %s: %v", sel, err)
	}
	return n
}
