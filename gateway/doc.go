// Package gateway is Parley's WebSocket front door. It owns the device
// sessions: it authenticates a device by its JWT, turns the device's frames
// into Commands appended to parley.commands (acking a frame only once its
// command is durable), and pushes events read from parley.events to the
// sessions they concern.
//
// A gateway never writes parley.events and never decides anything about a
// conversation (membership, dedup, seq): ingest does. It only refuses what it
// can refuse cheaply at the edge (frame and message size, rate, malformed
// frames), and keeps nothing that outlives its process: sessions are
// in-memory, so gateways are interchangeable behind a load balancer.
package gateway
