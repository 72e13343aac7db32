package testenv

import (
	"encoding/base64"
	"testing"
)

// TestClusterID: ids are 16 bytes of base64url and never begin with '-'
// (kafka-storage format read one such id as an option and failed).
func TestClusterID(t *testing.T) {
	for range 10000 {
		s := clusterID()
		if b, err := base64.RawURLEncoding.DecodeString(s); err != nil || len(b) != 16 || s[0] == '-' {
			t.Fatalf("cluster id %q: %d bytes, %v", s, len(b), err)
		}
	}
}
