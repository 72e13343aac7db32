// Package schemas owns the Parley contract shared by every component: the
// protobuf messages of commands, events and the client protocol (generated
// into package parleyv1 from proto/), the Kafka topics and record headers
// (topics.go), the user-facing error codes, the derivation of direct
// conversation ids, and the versioned CQL of the Cassandra views with the one
// function that applies it (Migrate).
//
// It holds no component logic and talks to no broker: it must stay importable
// by the gateway, ingest, the projector, query, tests and analytics tools
// alike. Evolution rules are in README.md.
package schemas

//go:generate go tool -modfile=tools/go.mod buf generate
//go:generate go tool -modfile=tools/go.mod buf build --as-file-descriptor-set -o parley.binpb
