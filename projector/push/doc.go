// Package push holds the clients of the push providers Parley delivers
// notifications through: Firebase Cloud Messaging (HTTP v1), the Apple Push
// Notification service (HTTP/2, token authentication), Web Push (RFC 8030
// with RFC 8291 encryption and RFC 8292 VAPID) and a signed webhook to a
// deployer's own gateway.
//
// Each client is a Sender built from its provider's Config (NewFCM,
// NewAPNs, NewWebPush, NewWebhook). Send delivers one Notification and
// answers nil (accepted), ErrInvalidToken (wrapped: the target is gone for
// good), a *RetryError (try again later, after RetryError.After when the
// provider said) or a *RefusedError (final, not about the target);
// Classify maps any error to one of those outcomes. README.md lists what
// each provider is sent and how its answers are classified.
//
// No client logs, and no error string carries a credential, an access
// token or a Web Push or webhook endpoint URL (only its host).
package push
