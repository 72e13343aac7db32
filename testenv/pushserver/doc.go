// Package pushserver runs local HTTPS stand-ins of the push providers for
// tests: FCM (token grant and HTTP v1 send), APNs (HTTP/2 only), a Web
// Push service (RFC 8030, decrypting RFC 8291 payloads) and a webhook
// receiver.
//
// Each server is started by a test (StartFCM, StartAPNs, StartWebPush,
// StartWebhook) with a TLS certificate and keys generated at start, and
// is closed when the test ends. It checks the real request format —
// method, path, headers, credentials, body shape — and answers anything
// malformed with 400 (or the provider's own status) and a reason, kept in
// Rejections. Each accepted request is recorded as a Request; WaitFor
// waits for them. Answers can be scripted per token or endpoint (Answer)
// or for the next requests (Next).
package pushserver
