// Package scan checks upload bytes for viruses with ClamAV's daemon, clamd.
//
// Clamd speaks clamd's own protocol over TCP or a unix socket, the
// null-terminated ("z") form of three commands:
//
//   - zINSTREAM, then the bytes as chunks, each a 4-byte big-endian length
//     and that many bytes, ended by a chunk of length zero. clamd answers
//     "stream: OK", "stream: <signature> FOUND", or an error ending in
//     "ERROR"; a stream longer than its StreamMaxLength is answered
//     "INSTREAM size limit exceeded. ERROR" as soon as it passes the limit
//     (ErrTooLarge).
//   - zPING, answered "PONG".
//   - zVERSION, answered "ClamAV <version>[/<database version>/<date>]".
//
// One connection carries one command: clamd closes it after the answer.
// The bytes go over the connection, so clamd needs no access to the
// gateway's disk, and it may run on another host.
//
// # Limits
//
// clamd refuses a stream longer than StreamMaxLength (ErrTooLarge), and it
// stops scanning a file at MaxFileSize and MaxScanSize: past those it
// answers OK for what it did not look at, unless AlertExceedsMax is on, in
// which case it answers a "Heuristics.Limits.Exceeded…" signature, which
// Scan reports as ErrTooLarge too, not as an infection. Set all three at
// least as large as the largest file the gateway accepts
// (PARLEY_GATEWAY_MAX_FILE_BYTES).
//
// # Settings
//
// FromEnv reads PARLEY_GATEWAY_CLAMD ("tcp:host:port" or "unix:/path";
// empty, the default, turns scanning off) and PARLEY_GATEWAY_CLAMD_TIMEOUT
// (DefaultTimeout).
package scan
