package system_test

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// TestE2ETLS: the gateways and query serve HTTPS and WSS with a
// certificate made for the test. Devices talk over wss://, query answers
// over https:// with the security headers, plain HTTP and TLS 1.1 are
// refused, a renewed certificate is served without a restart, and the web
// client works over https:// and wss:// in Chromium, which trusts exactly
// the test's key.
func TestE2ETLS(t *testing.T) {
	dir := t.TempDir()
	cert := testenv.WriteCert(t, dir, "edge")
	sys, _ := startWith(t, system.Options{Gateways: 1, DevTokens: true, TLS: &cert})
	if !strings.HasPrefix(sys.GatewayURLs[0], "https://") || !strings.HasPrefix(sys.QueryURL, "https://") {
		t.Fatalf("URLs %v %s, want https", sys.GatewayURLs, sys.QueryURL)
	}

	alice, bob := connect(t, sys, 0, "alice", "phone"), connect(t, sys, 0, "bob", "phone")
	conv := accepted(t, alice.MustDo("", direct("bob")))
	alice.MustDo(conv, &pb.SendMessage{ClientMsgId: "tls-1", Text: "over wss"})
	bob.WaitEvent("alice's message", func(e *pb.Event) bool { return e.GetMessageSent().GetText() == "over wss" })
	testenv.Eventually(t, time.Minute, func() string {
		if _, unread, ok := inboxEntry(t, sys, "bob", conv); !ok || unread != 1 {
			return "bob's inbox over https has not the message yet"
		}
		return ""
	})

	for _, u := range []string{sys.GatewayURLs[0] + "/healthz", sys.QueryURL + "/healthz"} {
		resp, err := sys.HTTPClient().Get(u)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.TLS == nil || resp.Header.Get("Strict-Transport-Security") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: TLS %v, headers %v", u, resp.TLS != nil, resp.Header)
		}
		plain := "http://" + strings.TrimPrefix(u, "https://")
		if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(plain); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("GET %s over plain HTTP: 200", plain)
			}
		}
		host := strings.SplitN(strings.TrimPrefix(u, "https://"), "/", 2)[0]
		if c, err := tls.Dial("tcp", host, &tls.Config{RootCAs: cert.Pool, MaxVersion: tls.VersionTLS11}); err == nil {
			_ = c.Close()
			t.Errorf("%s: a TLS 1.1 handshake was accepted", host)
		}
	}

	// A renewal: new files at the same paths, served without a restart.
	renewed := testenv.WriteCert(t, dir, "edge")
	host := strings.TrimPrefix(sys.GatewayURLs[0], "https://")
	testenv.Eventually(t, time.Minute, func() string {
		c, err := tls.Dial("tcp", host, &tls.Config{RootCAs: renewed.Pool})
		if err != nil {
			return "the renewed certificate is not served yet: " + err.Error()
		}
		_ = c.Close()
		return ""
	})
	tok, err := sys.Issuer.Issue("carol", "laptop", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	carol := testenv.DialWS(t, "wss://"+host+"/v1/ws", testenv.WSOptions{Token: tok, Name: "carol/laptop",
		TLS: &tls.Config{RootCAs: renewed.Pool}})
	accepted(t, carol.MustDo("", direct("alice")))

	// The web client over https and wss, Chromium trusting the renewed
	// key only.
	browser := chromium(t, chromedp.Flag("ignore-certificate-errors-spki-list", renewed.SPKIHash()))
	a := signIn(t, browser, sys.GatewayURLs[0], "alice")
	b := signIn(t, browser, sys.GatewayURLs[0], "bob")
	a.open(conv)
	a.waitText("over wss")
	b.unread(conv, 1)
	b.open(conv)
	b.waitText("over wss")
	b.send("and over https")
	a.waitText("and over https")
	a.checkOnce("over wss", "and over https")
	b.checkOnce("over wss", "and over https")
}
