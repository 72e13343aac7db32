// Package deploy is the wiring every Parley binary shares, written once: how
// a main reads its settings from the environment, how consumer groups and
// transactional ids are named, how a consumer group takes over partitions
// quickly after a crash, how a Cassandra session is built (ports, timeouts,
// consistency, authentication, TLS), and the ops listener (/metrics and a
// /healthz that tells the truth).
//
// The settings each main reads are listed, with their defaults, in the
// top-level README ("Settings").
package deploy
