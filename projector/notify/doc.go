// Package notify is the push notifier: a side consumer of parley.events
// that pushes new messages to the devices of their recipients that are not
// connected, and clears those pushes when the message is read elsewhere or
// recalled. It runs on Watermill's Router over the bus transport (franz-go)
// in two stages, each at-least-once with its offsets committed after the
// effect:
//
//   - plan reads parley.events (group Config.Group), waits until the
//     projector has applied the event and the presence statements
//     published before it were read, and appends one PushNotification per
//     device to parley.push;
//   - one deliverer per provider reads parley.push (group
//     Config.Group + "-" + provider), throttled per provider, retried with
//     backoff, and sends each of its records with the provider's client
//     (projector/push). A record that can never be sent goes to the
//     dead-letter topic; a token the provider calls invalid is
//     unregistered by a command appended to parley.commands.
//
// See README.md for the rules (who is pushed, badge, preview, collapse)
// and what a crash at each step leaves behind.
package notify
