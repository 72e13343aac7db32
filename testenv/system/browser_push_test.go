package system_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/parley-im/parley/projector"
	"github.com/parley-im/parley/projector/notify"
	"github.com/parley-im/parley/projector/push"
	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/pushserver"
	"github.com/parley-im/parley/testenv/system"
)

// fakePushKey is where the stand-in for the browser's push service keeps
// its subscription in the page's localStorage (and the key it was made
// with): present while subscribed.
const fakePushKey = "test.pushSubscription"

// localPushService makes the page's PushManager hand out sub, a
// subscription of the local Web Push server (testenv/pushserver), in place
// of one from the browser's own push service: Chromium's is Google's,
// which cannot be reached here, so pushManager.subscribe cannot succeed.
// Only that transport is replaced: PushManager.prototype.subscribe and
// getSubscription, in the page, before the client loads. Everything of
// Parley's (the client asking for permission, registering its service
// worker, subscribing with the VAPID key of config.json, registering the
// target over the WebSocket, the notifier encrypting and signing for the
// subscription's real keys) runs as it does with a real push service. The
// notifications permission is granted through CDP, as a person's click on
// the browser's prompt would.
func localPushService(sub pushserver.Subscription) func(*page) {
	return func(p *page) {
		p.t.Helper()
		src := fmt.Sprintf(`(() => {
			const sub = { endpoint: %q, keys: { p256dh: %q, auth: %q } };
			const KEY = %q;
			const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
			const bytes = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)).buffer;
			const made = () => ({
				endpoint: sub.endpoint, expirationTime: null, options: { userVisibleOnly: true },
				getKey: (name) => bytes(sub.keys[name]),
				toJSON: () => ({ endpoint: sub.endpoint, expirationTime: null, keys: { ...sub.keys } }),
				unsubscribe: async () => { localStorage.removeItem(KEY); return true; },
			});
			PushManager.prototype.subscribe = async function (opts) {
				if (!opts || opts.userVisibleOnly !== true || !opts.applicationServerKey) throw new DOMException('userVisibleOnly and applicationServerKey are required', 'NotAllowedError');
				const k = opts.applicationServerKey;
				localStorage.setItem(KEY, typeof k === 'string' ? k : b64(k.buffer ?? k));
				return made();
			};
			PushManager.prototype.getSubscription = async function () { return localStorage.getItem(KEY) ? made() : null; };
		})()`, sub.Endpoint, sub.P256dh, sub.Auth, fakePushKey)
		ctx, cancel := context.WithTimeout(p.ctx, browserWait)
		defer cancel()
		if _, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
			p.fail("add the push service's stand-in: %v", err)
		}
	}
}

// allowNotifications grants origin the notifications (and push)
// permission in the browser context of p, as a click on the browser's
// prompt does. (Browser.grantPermissions is gone from the protocol;
// Browser.setPermission is what it became.)
func allowNotifications(origin string) func(*page) {
	return notificationsPermission(origin, browser.PermissionSettingGranted)
}

// notificationsPermission sets origin's notifications (and push)
// permission in the browser context of p.
func notificationsPermission(origin string, setting browser.PermissionSetting) func(*page) {
	return func(p *page) {
		p.t.Helper()
		ctx, cancel := context.WithTimeout(p.ctx, browserWait)
		defer cancel()
		bc := chromedp.FromContext(p.ctx).BrowserContextID
		for _, d := range []*browser.PermissionDescriptor{{Name: "notifications"}, {Name: "push", UserVisibleOnly: true}} {
			if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{Permission: d,
				Setting: setting, Origin: origin, BrowserContextID: bc}); err != nil {
				p.fail("grant %s: %v", d.Name, err)
			}
		}
	}
}

// closeTab closes p's tab (its browser context stays, with the other tabs
// opened from p).
func (p *page) closeTab() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	id := chromedp.FromContext(p.ctx).Target.TargetID
	if _, err := chromedp.CallBrowser(ctx, target.CloseTarget, target.CloseTargetParams{TargetID: id}); err != nil {
		p.fail("close the tab: %v", err)
	}
}

// offlineAfter waits until the signals topic holds an OFFLINE statement of
// user's device made after since (a later disconnection than any before).
func offlineAfter(t *testing.T, sys *system.System, user, device string, since time.Time) {
	t.Helper()
	since = since.Truncate(time.Millisecond) // record timestamps are in milliseconds
	readTopicUntil(t, sys.Topics.Signals.Name, func(r *kgo.Record) bool {
		sig := &pb.GatewaySignal{}
		if r.Timestamp.Before(since) || proto.Unmarshal(r.Value, sig) != nil {
			return false
		}
		for _, d := range sig.GetPresence().GetDevices() {
			if d.GetUserId() == user && d.GetDeviceId() == device && d.GetState() == pb.PresenceState_PRESENCE_STATE_OFFLINE {
				return true
			}
		}
		return false
	})
}

// shownNotification is a notification the service worker shows, as
// registration.getNotifications() gives it.
type shownNotification struct {
	Title string `json:"title"`
	Body  string `json:"body"`
	Tag   string `json:"tag"`
	Conv  string `json:"conv"`
	Seq   int64  `json:"seq"`
}

// notifications are what bob's service worker shows now, read from a page
// of his browser context.
func (p *page) notifications() []shownNotification {
	p.t.Helper()
	raw := p.text(`navigator.serviceWorker.getRegistration().then((r) => r ? r.getNotifications() : []).then((ns) =>
		JSON.stringify(ns.map((n) => ({ title: n.title, body: n.body, tag: n.tag, conv: n.data?.conversationId ?? '', seq: n.data?.seq ?? 0 }))))`)
	var out []shownNotification
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		p.fail("decode notifications %s: %v", raw, err)
	}
	return out
}

// TestBrowserPush: Web Push in the web client, end to end, against the
// system with the notifier on and Web Push configured (a VAPID key pair
// made here; the local Web Push server of testenv/pushserver, which checks
// each request's VAPID signature against that key and decrypts it with the
// subscription's private key). bob turns notifications on with the
// header's control: the client asks for permission, registers its service
// worker, subscribes with config.json's VAPID key and registers the
// subscription over the WebSocket; the target reaches the views. His tab
// is closed (his device goes offline); alice writes to him; the push
// server receives, for bob's subscription, a signed and encrypted push
// with her message's preview. That decrypted payload, delivered to bob's
// service worker (ServiceWorker.deliverPushMessage: the browser's own
// push event), makes it show a notification titled alice with the text,
// tagged by the conversation. The link a click opens (#conv=…) opens that
// conversation. Signed in again the client re-registers the subscription,
// unchanged; turned off, it unregisters the target, which leaves the
// views, and the next message pushes to his other device only. Blocked by
// the browser, the control says so; a subscription the browser refuses
// shows as failed with the browser's reason.
func TestBrowserPush(t *testing.T) {
	browserCtx := chromium(t)
	wp := pushserver.StartWebPush(t)
	pub, priv, err := push.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	wp.RequireVAPIDKey(pub) // a push signed with another key is refused
	sender, err := push.NewWebPush(push.WebPushConfig{VAPIDPublicKey: pub, VAPIDPrivateKey: priv,
		Subscriber: "mailto:ops@example.com", RootCAs: wp.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	sys, live := startWith(t, system.Options{Gateways: 2, DevTokens: true, WebPushVAPIDPublicKey: pub,
		Notifier: &notify.Config{Senders: []push.Sender{sender}, RetryInitial: 50 * time.Millisecond}})
	tables, err := projector.NewTables(live.Session(), live.Keyspace)
	if err != nil {
		t.Fatal(err)
	}
	gw := sys.GatewayURLs[1]
	u, _ := url.Parse(gw)
	origin := u.Scheme + "://" + u.Host
	sub := wp.Subscribe(t)

	alice := signIn(t, browserCtx, sys.GatewayURLs[0], "alice")
	bob := signIn(t, browserCtx, gw, "bob", localPushService(sub), allowNotifications(origin))
	device := bob.text(`JSON.parse(localStorage.getItem('parley.device'))`)
	alice.do(chromedp.Click(chromedp.CSS(`[data-testid=new-direct]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=new-peer]`), "bob"),
		chromedp.Click(chromedp.CSS(`[data-testid=new-submit]`)))
	conv := alice.openConv()
	alice.send("hi bob")
	alice.waitText("hi bob")
	bob.unread(conv, 1)

	// bob turns notifications on, by keyboard.
	bob.waitFor(`document.querySelector('[data-testid=push]')?.dataset.state === 'off' && document.querySelector('[data-testid=push-toggle]').getAttribute('aria-pressed') === 'false'`)
	bob.do(chromedp.Focus(chromedp.CSS(`[data-testid=push-toggle]`)), chromedp.KeyEvent(kb.Enter))
	bob.waitFor(`document.querySelector('[data-testid=push]')?.dataset.state === 'on' && document.querySelector('[data-testid=push-toggle]').getAttribute('aria-pressed') === 'true'`)
	if got := bob.text(`localStorage.getItem('` + fakePushKey + `')`); got != pub {
		bob.fail("subscribed with applicationServerKey %q, want config.json's VAPID key %q", got, pub)
	}
	bob.waitFor(`navigator.serviceWorker.controller?.scriptURL === location.origin + '/sw.js'`)
	testenv.Eventually(t, time.Minute, func() string {
		got, err := tables.PushTargets(t.Context(), "bob")
		if err != nil || len(got) != 1 || got[0].DeviceID != device || got[0].Provider != schemas.ProviderName(pb.PushProvider_PUSH_PROVIDER_WEB_PUSH) ||
			got[0].Endpoint != sub.Endpoint || got[0].P256DH != sub.P256dh || got[0].Auth != sub.Auth {
			return fmt.Sprintf("bob's push targets: %+v %v; want %s's subscription %s", got, err, device, sub.Endpoint)
		}
		return ""
	})
	bob.screenshot("push-on")

	// A tab of bob's browser that is not the client (it holds no
	// connection): where the service worker is reached from.
	sw := openTab(t, mustChild(t, bob.ctx), "bob's worker")
	sw.do(chromedp.Navigate(gw + "/config.json"))
	regs := make(chan []*serviceworker.Registration, 16)
	if err := chromedp.Listen(sw.ctx, func(ev any) {
		if e, ok := ev.(*serviceworker.EventWorkerRegistrationUpdated); ok {
			regs <- e.Registrations
		}
	}); err != nil {
		t.Fatal(err)
	}
	{
		ctx, cancel := context.WithTimeout(sw.ctx, browserWait)
		_, err := chromedp.Call(ctx, serviceworker.Enable, struct{}{})
		cancel()
		if err != nil {
			t.Fatalf("ServiceWorker.enable: %v", err)
		}
	}
	var regID serviceworker.RegistrationID
	for regID == "" {
		select {
		case rs := <-regs:
			for _, r := range rs {
				if !r.IsDeleted && r.ScopeURL == gw+"/" {
					regID = r.RegistrationID
				}
			}
		case <-time.After(browserWait):
			t.Fatal("no service worker registration for " + gw + "/")
		}
	}

	// bob's tab goes away: his device is offline.
	closed := time.Now()
	bob.closeTab()
	offlineAfter(t, sys, "bob", device, closed)
	alice.send("are you there?")
	alice.waitText("are you there?")
	got := waitRequests(t, wp, 1)[0]
	if got.Address != sub.Endpoint || got.Kind != "message" || got.Silent || got.Title != "alice" || got.Body != "are you there?" ||
		got.Collapse != push.WebPushTopic(conv) || got.NotificationID == "" || got.Data["conversation_id"] != conv {
		t.Fatalf("pushed %+v; want alice's \"are you there?\" to %s, collapsed by %s", got, sub.Endpoint, conv)
	}
	if !strings.HasPrefix(got.Header.Get("Authorization"), "vapid t=") || !strings.Contains(got.Header.Get("Authorization"), "k="+pub) {
		t.Fatalf("Authorization %q: want VAPID with the key %s", got.Header.Get("Authorization"), pub)
	}

	// The payload the push service decrypted, delivered to bob's service
	// worker as a push event.
	deliveries, lastDelivery := 0, time.Time{}
	deliver := func() {
		ctx, cancel := context.WithTimeout(sw.ctx, browserWait)
		_, err := chromedp.Call(ctx, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{
			Origin: origin, RegistrationID: regID, Data: string(got.Raw)})
		cancel()
		if err != nil {
			t.Fatalf("ServiceWorker.deliverPushMessage: %v", err)
		}
		deliveries, lastDelivery = deliveries+1, time.Now()
	}
	deliver()
	var seq struct {
		Seq int64 `json:"seq"`
	}
	if err := json.Unmarshal(got.Raw, &seq); err != nil || seq.Seq < 2 {
		t.Fatalf("the payload %s has no seq: %v", got.Raw, err)
	}
	want := shownNotification{Title: "alice", Body: "are you there?", Tag: "parley:" + conv, Conv: conv, Seq: seq.Seq}
	var seen [][]shownNotification // the browser may close a notification after a while: what showed on the way
	testenv.Eventually(t, browserWait, func() string {
		ns := sw.notifications()
		if !slices.Contains(ns, want) || len(ns) != 1 {
			if len(ns) > 0 && len(seen) < 5 {
				seen = append(seen, ns)
			}
			// A push service delivers again what the browser did not take
			// (deliverPushMessage does not say whether the worker ran): on
			// a loaded machine the worker may still be starting. The tag
			// keeps it one notification.
			if len(ns) == 0 && time.Since(lastDelivery) > 15*time.Second {
				deliver()
			}
			return fmt.Sprintf("bob's service worker shows %+v (before: %+v) after %d deliveries; want only %+v", ns, seen, deliveries, want)
		}
		return ""
	})
	t.Logf("the push shown after %d deliveries to the service worker", deliveries)

	// The link a click on it opens shows the conversation; bob is signed
	// in still, and the client registers the subscription again (the same
	// target: no change).
	versionBefore := pushTargetVersion(t, tables, "bob")
	bob = openTab(t, mustChild(t, sw.ctx), "bob")
	localPushService(sub)(bob)
	bob.do(chromedp.Navigate(gw + "/#conv=" + url.QueryEscape(conv)))
	bob.waitFor(fmt.Sprintf(`document.querySelector('[data-testid=conversation]')?.dataset.conv === %q`, conv))
	bob.online()
	bob.waitText("are you there?")
	bob.waitFor(`document.querySelector('[data-testid=push]')?.dataset.state === 'on' && location.hash === ''`)
	if v := pushTargetVersion(t, tables, "bob"); v != versionBefore {
		t.Fatalf("registering the same subscription again changed the target (version %d, was %d)", v, versionBefore)
	}

	// bob's other device, an app with a target on the same push server, is
	// what shows that the next message is pushed.
	other := wp.Subscribe(t)
	tablet := connect(t, sys, 0, "bob", "tablet")
	accepted(t, tablet.MustDo("", &pb.RegisterPushTarget{Target: other.Target("")}))

	// Off: the target is unregistered and the subscription dropped.
	bob.do(chromedp.Click(chromedp.CSS(`[data-testid=push-toggle]`)))
	bob.waitFor(`document.querySelector('[data-testid=push]')?.dataset.state === 'off' && document.querySelector('[data-testid=push-toggle]').getAttribute('aria-pressed') === 'false'`)
	tablet.WaitEvent("the browser's unregistration", func(e *pb.Event) bool {
		u := e.GetPushTargetUnregistered()
		return u.GetDeviceId() == device && u.GetReason() == pb.PushUnregisterReason_PUSH_UNREGISTER_REASON_LOGOUT
	})
	if bob.eval(`localStorage.getItem('` + fakePushKey + `') !== null`) {
		bob.fail("turned off, the subscription is still there")
	}
	testenv.Eventually(t, time.Minute, func() string {
		got, err := tables.PushTargets(t.Context(), "bob")
		if err != nil || len(got) != 1 || got[0].DeviceID != "tablet" {
			return fmt.Sprintf("bob's push targets: %+v %v; want the tablet's only", got, err)
		}
		return ""
	})
	closed = time.Now()
	tablet.Close()
	bob.closeTab()
	offlineAfter(t, sys, "bob", "tablet", closed)
	offlineAfter(t, sys, "bob", device, closed)
	alice.send("one more")
	alice.waitText("one more")
	// bob's pushes are sent in order: had the browser been pushed, that
	// push would be among these.
	reqs := waitRequests(t, wp, 2)
	if r := reqs[1]; r.Address != other.Endpoint || r.Body != "one more" {
		t.Fatalf("the second push %+v; want \"one more\" to the tablet", r)
	}
	for _, r := range wp.Requests() {
		if r.Address == sub.Endpoint && r.Body != "are you there?" {
			t.Fatalf("pushed to the browser after it turned notifications off: %+v", r)
		}
	}
	if rej := wp.Rejections(); len(rej) != 0 {
		t.Fatalf("the push server refused requests: %q", rej)
	}

	// Where it cannot work, the control says why. carol blocked
	// notifications for the site: the button is disabled and the state
	// says blocked. dave allowed them, but his browser cannot subscribe
	// (no stand-in here: Chromium refuses push subscriptions in the
	// off-the-record browser contexts CDP makes, and its push service is out
	// of reach anyway): the control shows the browser's reason, and no
	// target is registered.
	carol := signIn(t, browserCtx, gw, "carol", notificationsPermission(origin, browser.PermissionSettingDenied))
	carol.waitFor(`document.querySelector('[data-testid=push]')?.dataset.state === 'blocked' && document.querySelector('[data-testid=push-toggle]').disabled && document.querySelector('[data-testid=push-state]').textContent === 'blocked by the browser'`)
	dave := signIn(t, browserCtx, gw, "dave", allowNotifications(origin))
	dave.do(chromedp.Click(chromedp.CSS(`[data-testid=push-toggle]`)))
	dave.waitFor(`document.querySelector('[data-testid=push]')?.dataset.state === 'failed' && document.querySelector('[data-testid=push-error]')?.textContent.length > 2 && document.querySelector('[data-testid=push-toggle]').getAttribute('aria-pressed') === 'false'`)
	t.Logf("subscribing without a reachable push service: %s", dave.text(`document.querySelector('[data-testid=push-state]').textContent`))
	if got, err := tables.PushTargets(t.Context(), "dave"); err != nil || len(got) != 0 {
		t.Fatalf("dave's push targets: %+v %v; want none", got, err)
	}
}

// mustChild is a chromedp context for a new tab in the browser context of
// parent's tab.
func mustChild(t *testing.T, parent context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	t.Cleanup(cancel)
	return ctx
}

// pushTargetVersion is the user-stream version of user's only web push
// target in the views.
func pushTargetVersion(t *testing.T, tables *projector.Tables, user string) int64 {
	t.Helper()
	got, err := tables.PushTargets(t.Context(), user)
	if err != nil || len(got) != 1 {
		t.Fatalf("%s's push targets: %+v %v", user, got, err)
	}
	return got[0].Version
}
