package schemas

import (
	"errors"
	"strings"
	"testing"

	pb "github.com/parley-im/parley/schemas/parleyv1"
)

func TestCheckConversationID(t *testing.T) {
	good := []string{DirectConversationID("a", "b"), NewGroupConversationID()}
	for _, id := range good {
		if err := CheckConversationID("conversationId", id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	bad := []string{"", "g:", "g:123", "x:" + strings.Repeat("0", 32), "g:" + strings.Repeat("A", 32),
		"g:" + strings.Repeat("0", 31) + "z", "g:" + strings.Repeat("0", 33), strings.Repeat("g", 70_000)}
	for _, id := range bad {
		err := CheckConversationID("conversationId", id)
		var ie *IDError
		if !errors.As(err, &ie) || ie.Code != pb.ErrorCode_ERROR_CODE_INVALID_ID {
			t.Errorf("%.40q: want INVALID_ID, got %v", id, err)
			continue
		}
		if len(err.Error()) > 300 {
			t.Errorf("%.40q: message of %d bytes repeats the input", id, len(err.Error()))
		}
	}
	if IsGroupConversationID(DirectConversationID("a", "b")) || !IsGroupConversationID(NewGroupConversationID()) {
		t.Error("IsGroupConversationID")
	}
}

func TestCheckID(t *testing.T) {
	for _, id := range []string{"alice", "ü-1", "01J5ABCDEF", strings.Repeat("x", MaxIDBytes)} {
		if err := CheckID("userId", id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range []string{"", "a b", "a\nb", "\xff", strings.Repeat("x", MaxIDBytes+1)} {
		if err := CheckID("userId", id); err == nil {
			t.Errorf("%q: accepted", id)
		}
	}
	if CheckOptionalID("requestId", "") != nil || CheckOptionalID("requestId", "a b") == nil {
		t.Error("CheckOptionalID")
	}
}

func TestCheckCursor(t *testing.T) {
	cases := []struct {
		seq, last int64
		ok        bool
	}{{0, 0, true}, {5, 5, true}, {6, 5, false}, {-1, 5, false}, {1 << 40, -1, true}, {-1, -1, false}}
	for _, c := range cases {
		err := CheckCursor("lastSeq", c.seq, c.last)
		if (err == nil) != c.ok {
			t.Errorf("CheckCursor(%d, %d) = %v", c.seq, c.last, err)
		}
		var ie *IDError
		if err != nil && (!errors.As(err, &ie) || ie.Code != pb.ErrorCode_ERROR_CODE_INVALID_CURSOR) {
			t.Errorf("CheckCursor(%d, %d): want INVALID_CURSOR, got %v", c.seq, c.last, err)
		}
	}
}

func TestClip(t *testing.T) {
	long := strings.Repeat("é", 1000)
	c := Clip(long)
	if len(c) > 100 || !strings.Contains(c, "(2000 bytes)") {
		t.Errorf("Clip: %s", c)
	}
	if Clip("ab") != `"ab"` {
		t.Errorf("Clip short: %s", Clip("ab"))
	}
}

func TestUserStreamID(t *testing.T) {
	a, b := UserStreamID("alice"), UserStreamID("bob")
	if a == b || !IsUserStreamID(a) || IsUserStreamID(DirectConversationID("alice", "bob")) {
		t.Fatalf("UserStreamID: %q %q", a, b)
	}
	if err := CheckStreamID("c", a); err != nil {
		t.Fatalf("CheckStreamID(user stream): %v", err)
	}
	if CheckConversationID("c", a) == nil {
		t.Fatal("CheckConversationID accepts a user stream id; it names no conversation")
	}
	for _, bad := range []string{"u:", "u:" + strings.Repeat("A", 32), "u:" + strings.Repeat("0", 31)} {
		if CheckStreamID("c", bad) == nil {
			t.Errorf("CheckStreamID(%q) = nil", bad)
		}
	}
}
