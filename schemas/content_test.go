package schemas

import (
	"strings"
	"testing"
)

func TestCheckContent(t *testing.T) {
	for _, tc := range []struct {
		ct, text, want, err string
	}{
		{"", "hi", "text/plain", ""},
		{"text/plain", "hi", "text/plain", ""},
		{"Text/Markdown", "**hi**", "text/markdown", ""},
		{"text/plain; charset=utf-8", "hi", "text/plain; charset=utf-8", ""},
		{"application/x-unknown", "opaque, passed through", "application/x-unknown", ""},
		{ContentCustom, `{"type":"approval.request","id":"PO-1182"}`, ContentCustom, ""},
		{"plain", "hi", "", "not a media type"},
		{"text/plain;;", "hi", "", "not a media type"},
		{strings.Repeat("x", 120) + "/" + strings.Repeat("y", 10), "hi", "", "longer than 128 bytes"},
		{"text/plain", "\xff", "", "not UTF-8"},
		{ContentCustom, `["type"]`, "", "not a JSON object"},
		{ContentCustom, `{"type":""}`, "", `needs a "type" string`},
		{ContentCustom, `{"type":7}`, "", `needs a "type" string`},
		{ContentCustom, `{"id":1}`, "", `needs a "type" string`},
		{ContentCustom, `{"type":"` + strings.Repeat("t", 65) + `"}`, "", `needs a "type" string`},
		{ContentCustom, `{"type":"big","pad":"` + strings.Repeat("p", 100) + `"}`, "", "custom payload of"},
	} {
		got, err := CheckContent(tc.ct, tc.text, 100)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("CheckContent(%q, %q) = %q, %v; want %q", tc.ct, tc.text, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("CheckContent(%q, %q): error %v, want one with %q", tc.ct, tc.text, err, tc.err)
		}
	}
}
