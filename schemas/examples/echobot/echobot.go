// Package echobot is an example bot: a user of kind bot that receives the
// events of its conversations through its webhook and answers through the
// admin API (projector/notify/README.md, "Webhooks"; gateway/README.md,
// "Admin API"). It answers every message another member sends with
// "echo: " and the text.
//
// What it shows:
//
//   - the signature check, before anything in the body is trusted: the
//     Parley-Signature header is "t=<unix seconds>,v1=<hex HMAC-SHA256 of
//     "<t>.<body>">" under the webhook's secret, and t must be recent;
//   - reading the delivery as JSON only (the event is protojson: lowerCamelCase
//     names, int64 as strings), with no Parley code or protobuf needed;
//   - not answering itself, so two bots cannot loop;
//   - exactly one answer per message however often a delivery comes: the
//     answer's Idempotency-Key is derived from the delivery id, which a
//     retry or a re-send keeps, so the admin API turns a repeat into the
//     first answer;
//   - the webhook is answered 2xx only once the answer is appended; on a
//     failure it answers 503, and the dispatcher tries again.
package echobot

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Bot serves the webhook of one bot user.
type Bot struct {
	// UserID is the bot's user id: the webhook's owner, and the user its
	// admin key may act as.
	UserID string
	// Secret is the webhook's signing secret, as the admin API gave it.
	Secret []byte
	// AdminURL is a gateway's base URL; AdminKey its admin API key
	// ("<key id>.<secret>", scope messages:write, acting as UserID).
	AdminURL, AdminKey string
	// Client posts the answers (default http.DefaultClient).
	Client *http.Client
	// Tolerance bounds the age of a signature (default 5 minutes).
	Tolerance time.Duration
	Logger    *slog.Logger
}

// delivery is the part of a webhook body the bot reads.
type delivery struct {
	DeliveryID string `json:"deliveryId"`
	Type       string `json:"type"`
	Event      struct {
		ConversationID string `json:"conversationId"`
		ActorUserID    string `json:"actorUserId"`
		Seq            string `json:"seq"`
		MessageSent    *struct {
			Text string `json:"text"`
		} `json:"messageSent"`
	} `json:"event"`
}

// ServeHTTP handles one delivery.
func (b *Bot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := b.verify(r.Header.Get("Parley-Signature"), body, time.Now()); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var d delivery
	if err := json.Unmarshal(body, &d); err != nil {
		http.Error(w, "not a delivery", http.StatusBadRequest)
		return
	}
	ev := d.Event
	if d.Type != "MessageSent" || ev.MessageSent == nil || ev.ActorUserID == b.UserID || ev.MessageSent.Text == "" {
		w.WriteHeader(http.StatusNoContent) // nothing to answer
		return
	}
	if err := b.answer(r.Context(), d.DeliveryID, ev.ConversationID, "echo: "+ev.MessageSent.Text); err != nil {
		b.logger().Warn("echo not sent; the delivery will come again", "delivery", d.DeliveryID, "err", err)
		http.Error(w, "answer not sent", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// verify checks the Parley-Signature header against body.
func (b *Bot) verify(header string, body []byte, now time.Time) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("malformed Parley-Signature")
	}
	tol := b.Tolerance
	if tol == 0 {
		tol = 5 * time.Minute
	}
	if age := now.Sub(time.Unix(unix, 0)); age > tol || age < -tol {
		return fmt.Errorf("signature timestamp out of tolerance")
	}
	m := hmac.New(sha256.New, b.Secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := m.Sum(nil)
	for _, s := range sigs {
		if got, err := hex.DecodeString(s); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("signature does not match")
}

// answer posts text to conv as the bot, once per delivery.
func (b *Bot) answer(ctx context.Context, deliveryID, conv, text string) error {
	body, err := json.Marshal(map[string]string{"asUserId": b.UserID, "text": text})
	if err != nil {
		return err
	}
	u := strings.TrimSuffix(b.AdminURL, "/") + "/v1/admin/conversations/" + url.PathEscape(conv) + "/messages"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.AdminKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "echo-"+deliveryID)
	c := b.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin API: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

func (b *Bot) logger() *slog.Logger {
	if b.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Logger
}
