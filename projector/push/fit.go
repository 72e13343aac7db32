package push

import (
	"fmt"
	"unicode/utf8"
)

// Payload limits of the providers, in bytes.
const (
	// apnsMaxPayload is APNs' limit on a notification's JSON body.
	apnsMaxPayload = 4096
	// fcmMaxPayload bounds the notification and data of an FCM message
	// (FCM's limit is 4096 bytes for them; a margin for its own
	// accounting).
	fcmMaxPayload = 4000
	// webPushMaxPayload is the largest plaintext that fits one 4096-byte
	// aes128gcm record: 4096 - 16 (tag) - 86 (header) - 1 (delimiter).
	webPushMaxPayload = 3993
)

// fit returns n, or a copy of n with Body (then Title) shortened at a
// character boundary and ended with "…", as little as needed for size(n)
// to be at most limit (a binary search over the cut). A notification that
// does not fit even without text (too much Data) is a *RefusedError with
// status 413.
func fit(n *Notification, limit int, size func(*Notification) (int, error)) (*Notification, error) {
	s, err := size(n)
	if err != nil || s <= limit {
		return n, err
	}
	c := *n
	for _, text := range []*string{&c.Body, &c.Title} {
		full := *text
		if full == "" {
			continue
		}
		*text = ""
		if s, err = size(&c); err != nil {
			return nil, err
		}
		if s > limit {
			continue // even without it, too large: shorten the next text too
		}
		// The longest cut that fits: lo always fits, hi never does.
		lo, hi := 0, len(full)
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			*text = shorten(full, mid)
			if s, err = size(&c); err != nil {
				return nil, err
			}
			if s <= limit {
				lo = mid
			} else {
				hi = mid
			}
		}
		*text = shorten(full, lo)
		return &c, nil
	}
	return nil, &RefusedError{Status: 413, Reason: fmt.Sprintf("the payload is %d bytes without title or body, over the provider's %d", s, limit)}
}

// shorten cuts s to at most max bytes, "…" included, at a character
// boundary; "" when not even that fits.
func shorten(s string, max int) string {
	const ellipsis = "…"
	if max >= len(s) {
		return s
	}
	max -= len(ellipsis)
	if max <= 0 {
		return ""
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max] + ellipsis
}
