package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/parley-im/parley/schemas"
	pb "github.com/parley-im/parley/schemas/parleyv1"
)

// The admin API's webhooks (README.md, "Admin API"; the dispatcher:
// projector/notify/README.md, "Webhooks"). A webhook belongs to a user the
// key may act as (a bot); it lives on that user's stream.

type adminWebhook struct {
	WebhookID           string   `json:"webhookId,omitempty"`
	URL                 string   `json:"url"`
	EventTypes          []string `json:"eventTypes,omitempty"`
	ConversationIDs     []string `json:"conversationIds,omitempty"`
	MemberConversations bool     `json:"memberConversations,omitempty"`
}

// adminWebhookCreated answers a create: the decision, and the signing
// secret the receiver verifies deliveries with.
type adminWebhookCreated struct {
	CommandID      string `json:"commandId,omitempty"`
	ConversationID string `json:"conversationId"`
	Event          string `json:"event,omitempty"`
	Repeated       bool   `json:"repeated,omitempty"`
	WebhookID      string `json:"webhookId"`
	Secret         string `json:"secret"`
}

type adminWebhookRow struct {
	WebhookID           string    `json:"webhookId"`
	URL                 string    `json:"url"`
	EventTypes          []string  `json:"eventTypes,omitempty"`
	ConversationIDs     []string  `json:"conversationIds,omitempty"`
	MemberConversations bool      `json:"memberConversations,omitempty"`
	CreatedBy           string    `json:"createdBy"`
	CreatedAt           time.Time `json:"createdAt"`
}

type adminWebhooks struct {
	UserID   string            `json:"userId"`
	Webhooks []adminWebhookRow `json:"webhooks"`
}

func (a *admin) addWebhookRoutes(mux *router) {
	mux.HandleFunc("POST /v1/admin/users/{user}/webhooks", a.with(ScopeWebhooksWrite, a.createWebhook))
	mux.HandleFunc("GET /v1/admin/users/{user}/webhooks", a.with(ScopeWebhooksWrite, a.listWebhooks))
	mux.HandleFunc("DELETE /v1/admin/users/{user}/webhooks/{webhook}", a.with(ScopeWebhooksWrite, a.deleteWebhook))
}

// webhookOwner checks the path's user, whom the key must act as, and that
// this gateway can sign.
func (a *admin) webhookOwner(r *http.Request, p principal) (string, error) {
	user, err := pathID(r, "user", schemas.CheckID)
	if err != nil {
		return "", err
	}
	if err := actAs(p, user); err != nil {
		return "", err
	}
	if len(a.srv.cfg.WebhookSigningKey) == 0 {
		return "", refuse(http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE,
			"webhooks are not configured on this gateway (PARLEY_WEBHOOK_SIGNING_KEY_FILE)")
	}
	return user, nil
}

// derivedWebhookID is the webhook id of a create retried with key.
func derivedWebhookID(p principal, key string) string {
	sum := sha256.Sum256([]byte("admin-webhook\x00" + p.key.ID + "\x00" + key))
	return "wh-" + hex.EncodeToString(sum[:12])
}

// createWebhook serves POST /v1/admin/users/{user}/webhooks.
func (a *admin) createWebhook(w http.ResponseWriter, r *http.Request, p principal) {
	var body adminWebhook
	user, err := a.webhookOwner(r, p)
	var key string
	if err == nil {
		key, err = idempotencyKey(r)
	}
	if err == nil {
		err = readBody(w, r, &body)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	id := body.WebhookID
	switch {
	case id == "" && key != "":
		id = derivedWebhookID(p, key)
	case id == "":
		id = "wh-" + newID(time.Now())
	}
	hook := &pb.Webhook{WebhookId: id, Url: body.URL, EventTypes: body.EventTypes, ConversationIds: body.ConversationIDs,
		MemberConversations: body.MemberConversations}
	cmd := a.command(p, user, schemas.UserStreamID(user))
	cmd.Body = &pb.Command_CreateWebhook{CreateWebhook: &pb.CreateWebhook{Webhook: hook}}
	ev, err := a.srv.appendAndWait(r.Context(), cmd, adminDecisionWait, nil)
	if err != nil {
		a.fail(w, err)
		return
	}
	created := adminWebhookCreated{CommandID: cmd.GetCommandId(), ConversationID: cmd.GetConversationId(), WebhookID: id,
		Secret: string(schemas.WebhookSecret(a.srv.cfg.WebhookSigningKey, user, id))}
	status := http.StatusCreated
	switch rej := ev.GetCommandRejected(); {
	case rej.GetCode() == pb.ErrorCode_ERROR_CODE_NO_CHANGE:
		// A retry: the webhook stands with this definition.
		created.Event, created.Repeated, status = schemas.TypeWebhookCreated, true, http.StatusOK
	case rej != nil:
		a.decision(w, rej.GetCode(), rej.GetMessage())
		return
	case ev == nil:
		status = http.StatusAccepted
	default:
		created.Event = schemas.EventType(ev)
	}
	writeJSON(w, status, created)
}

// listWebhooks serves GET /v1/admin/users/{user}/webhooks from the
// webhooks view.
func (a *admin) listWebhooks(w http.ResponseWriter, r *http.Request, p principal) {
	user, err := a.webhookOwner(r, p)
	if err != nil {
		a.fail(w, err)
		return
	}
	if a.tables == nil {
		a.refuse(w, http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "the views are not configured on this gateway")
		return
	}
	if !a.audit(w, r, p, schemas.UserStreamID(user), user) {
		return
	}
	rows, err := a.tables.Webhooks(r.Context(), user)
	if err != nil {
		a.refuse(w, http.StatusServiceUnavailable, pb.ErrorCode_ERROR_CODE_UNAVAILABLE, "the views did not answer; retry")
		return
	}
	out := adminWebhooks{UserID: user, Webhooks: []adminWebhookRow{}}
	for _, row := range rows {
		h := row.Webhook
		out.Webhooks = append(out.Webhooks, adminWebhookRow{WebhookID: h.GetWebhookId(), URL: h.GetUrl(), EventTypes: h.GetEventTypes(),
			ConversationIDs: h.GetConversationIds(), MemberConversations: h.GetMemberConversations(), CreatedBy: row.CreatedBy,
			CreatedAt: row.CreatedAt.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
}

// deleteWebhook serves DELETE /v1/admin/users/{user}/webhooks/{webhook}.
// Deleting a webhook the user does not hold answers 200 repeated.
func (a *admin) deleteWebhook(w http.ResponseWriter, r *http.Request, p principal) {
	user, err := a.webhookOwner(r, p)
	var id string
	if err == nil {
		id, err = pathID(r, "webhook", schemas.CheckID)
	}
	if err == nil {
		_, err = idempotencyKey(r)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	cmd := a.command(p, user, schemas.UserStreamID(user))
	cmd.Body = &pb.Command_DeleteWebhook{DeleteWebhook: &pb.DeleteWebhook{WebhookId: id}}
	ev, err := a.srv.appendAndWait(r.Context(), cmd, adminDecisionWait, nil)
	if err != nil {
		a.fail(w, err)
		return
	}
	if rej := ev.GetCommandRejected(); rej != nil && rej.GetCode() == pb.ErrorCode_ERROR_CODE_NOT_FOUND {
		writeJSON(w, http.StatusOK, adminResult{CommandID: cmd.GetCommandId(), ConversationID: cmd.GetConversationId(),
			Event: schemas.TypeWebhookDeleted, Repeated: true})
		return
	}
	a.answer(w, cmd, ev, http.StatusOK)
}
