package system_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// connect opens a session of user's device on gateway gw, closed at cleanup.
func connect(t testing.TB, sys *system.System, gw int, user, name string) *testenv.WSClient {
	t.Helper()
	return dial(t, sys, gw, user, name, "")
}

// connectResuming connects with ?resume=1: live events are held until the
// device's first Resume completes.
func connectResuming(t testing.TB, sys *system.System, gw int, user, name string) *testenv.WSClient {
	t.Helper()
	return dial(t, sys, gw, user, name, "?resume=1")
}

func dial(t testing.TB, sys *system.System, gw int, user, name, query string) *testenv.WSClient {
	t.Helper()
	tok, err := sys.Issuer.Issue(user, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	url := "ws" + strings.TrimPrefix(sys.GatewayURLs[gw], "http") + "/v1/ws" + query
	return testenv.DialWS(t, url, testenv.WSOptions{Token: tok, Name: user + "/" + name, TLS: sys.ClientTLS})
}

// resume sends a Resume with cursors (conversation → last version applied)
// and returns the events that arrived before its Resumed, and the Resumed.
func resume(t testing.TB, d *testenv.WSClient, cursors map[string]int64) ([]*pb.Event, *pb.Resumed) {
	t.Helper()
	r := &pb.Resume{}
	for c, v := range cursors {
		r.Cursors = append(r.Cursors, &pb.ConversationCursor{ConversationId: c, Version: v})
	}
	f := d.MustDo("", r)
	if f.GetResumed() == nil {
		t.Fatalf("%s: want Resumed, got %v", d.Name(), f)
	}
	// The reader queues events before it hands over the answer, so every
	// catch-up event is queued already.
	return d.DrainEvents(), f.GetResumed()
}

// accepted asserts an answer is Accepted and returns its conversation id.
func accepted(t testing.TB, f *pb.ServerFrame) string {
	t.Helper()
	a := f.GetAccepted()
	if a == nil {
		t.Fatalf("want Accepted, got %v", f)
	}
	return a.GetConversationId()
}

// api calls query as user and decodes the JSON answer into out; it returns the status.
func api(t testing.TB, sys *system.System, user, path string, out any) int {
	t.Helper()
	tok, _ := sys.Issuer.Issue(user, "", time.Hour)
	req, _ := http.NewRequest(http.MethodGet, sys.QueryURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := sys.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %s: %v", path, b, err)
		}
	}
	return resp.StatusCode
}
