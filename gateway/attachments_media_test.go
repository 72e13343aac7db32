package gateway

import "testing"

// TestDeclaredMatches: a declared type agrees with the sniffed one when it
// is the same, of the same top-level type (but not application/*), or no
// claim; anything else is a spoof.
func TestDeclaredMatches(t *testing.T) {
	for _, tc := range []struct {
		declared, sniffed string
		want              bool
	}{
		{"image/jpeg", "image/jpeg", true},
		{"image/jpg", "image/jpeg", true},
		{"IMAGE/PNG; q=1", "image/jpeg", true},
		{"application/octet-stream", "application/pdf", true},
		{"application/x-www-form-urlencoded", "image/jpeg", true},
		{"image/png", "application/octet-stream", false},
		{"application/pdf", "image/jpeg", false},
		{"application/pdf", "application/zip", false},
		{"audio/ogg", "video/mp4", false},
		{"text/plain", "text/plain; charset=utf-8", true},
	} {
		if got := declaredMatches(tc.declared, tc.sniffed); got != tc.want {
			t.Errorf("declaredMatches(%q, %q) = %v, want %v", tc.declared, tc.sniffed, got, tc.want)
		}
	}
}
