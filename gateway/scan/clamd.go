package scan

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// DefaultTimeout bounds one command to clamd when Clamd.Timeout is zero:
// from the dial to the answer, the whole stream included.
const DefaultTimeout = time.Minute

// DefaultChunkSize is the INSTREAM chunk size when Clamd.ChunkSize is zero.
const DefaultChunkSize = 256 << 10

// maxReply caps what is read of one answer.
const maxReply = 4 << 10

// ErrTooLarge is clamd refusing a stream for its size: "INSTREAM size limit
// exceeded" (StreamMaxLength), or, with AlertExceedsMax, a
// "Heuristics.Limits.Exceeded" signature (MaxFileSize, MaxScanSize and the
// like). The bytes were not (wholly) scanned.
var ErrTooLarge = errors.New("clamd: the stream passes clamd's size limit")

// ReplyError is an answer of clamd that is not one the command has.
type ReplyError struct {
	Command string // "INSTREAM", "PING", "VERSION"
	Reply   string // without the terminating NUL
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("clamd: unexpected answer to %s: %q", e.Command, e.Reply)
}

// Verdict is what clamd found in a stream.
type Verdict struct {
	Infected bool
	// Signature names what was found, as clamd reports it
	// ("Win.Test.EICAR_HDB-1"); empty when clean.
	Signature string
}

// Clamd is a client of one clamd. The zero ChunkSize and Timeout take
// their defaults; a Clamd is safe for concurrent use (each command dials
// its own connection).
type Clamd struct {
	// Network is "tcp" or "unix"; Address is host:port or the socket's path.
	Network, Address string
	// Timeout bounds one command, from the dial to the answer
	// (DefaultTimeout). A context deadline that comes first wins.
	Timeout time.Duration
	// ChunkSize is the largest INSTREAM chunk (DefaultChunkSize).
	ChunkSize int
}

func (c Clamd) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// dial connects within the command's deadline; cancelling ctx interrupts
// whatever the connection is doing. The returned stop undoes that.
func (c Clamd) dial(ctx context.Context) (net.Conn, func() bool, error) {
	deadline := time.Now().Add(c.timeout())
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, c.Network, c.Address)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("clamd: dial %s %s: %w", c.Network, c.Address, ctx.Err())
		}
		return nil, nil, fmt.Errorf("clamd: %w", err) // names the network and address
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return conn, stop, nil
}

// command sends a command without payload and reads its answer.
func (c Clamd) command(ctx context.Context, name string) (string, error) {
	conn, stop, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	defer stop()
	if _, err := io.WriteString(conn, "z"+name+"\x00"); err != nil {
		return "", c.ioError(ctx, name, err)
	}
	reply, err := readReply(conn)
	if err != nil {
		return "", c.ioError(ctx, name, err)
	}
	return reply, nil
}

// ioError names a failed exchange, preferring the context's reason.
func (c Clamd) ioError(ctx context.Context, command string, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return fmt.Errorf("clamd %s %s: %s: %w", c.Network, c.Address, command, err)
}

// Ping checks that clamd answers.
func (c Clamd) Ping(ctx context.Context) error {
	reply, err := c.command(ctx, "PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return &ReplyError{Command: "PING", Reply: reply}
	}
	return nil
}

// Version is clamd's version string, "ClamAV 1.4.6/27000/Mon Jan 1
// 09:00:00 2026" (without the database part when the databases carry no
// version).
func (c Clamd) Version(ctx context.Context) (string, error) {
	reply, err := c.command(ctx, "VERSION")
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(reply, "ClamAV ") {
		return "", &ReplyError{Command: "VERSION", Reply: reply}
	}
	return reply, nil
}

// Scan streams r to clamd (INSTREAM) and returns its verdict. An error is
// no verdict: the bytes are not known to be clean (clamd unreachable, too
// slow, ErrTooLarge, a *ReplyError, or r failing).
func (c Clamd) Scan(ctx context.Context, r io.Reader) (Verdict, error) {
	conn, stop, err := c.dial(ctx)
	if err != nil {
		return Verdict{}, err
	}
	defer conn.Close()
	defer stop()
	if _, err := io.WriteString(conn, "zINSTREAM\x00"); err != nil {
		return Verdict{}, c.ioError(ctx, "INSTREAM", err)
	}
	// clamd may answer before the stream ends (a size limit passed) and
	// then close the connection: the answer is read while the bytes go.
	type answer struct {
		reply string
		err   error
	}
	answered := make(chan answer, 1)
	go func() {
		reply, err := readReply(conn)
		answered <- answer{reply, err}
	}()
	size := c.ChunkSize
	if size <= 0 {
		size = DefaultChunkSize
	}
	buf := make([]byte, 4+size)
	var werr error
	for werr == nil {
		select {
		case a := <-answered: // an answer before the end of the stream
			if a.err != nil {
				return Verdict{}, c.ioError(ctx, "INSTREAM", a.err)
			}
			return scanVerdict(a.reply)
		default:
		}
		n, rerr := io.ReadFull(r, buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf, uint32(n))
			_, werr = conn.Write(buf[:4+n])
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return Verdict{}, fmt.Errorf("clamd: reading the bytes to scan: %w", rerr)
		}
	}
	if werr == nil {
		_, werr = conn.Write([]byte{0, 0, 0, 0})
	}
	// A write that failed may be clamd closing after an early answer: the
	// answer, if any, says why.
	a := <-answered
	if a.err != nil || a.reply == "" {
		if werr != nil {
			return Verdict{}, c.ioError(ctx, "INSTREAM", werr)
		}
		if a.err == nil {
			a.err = io.ErrUnexpectedEOF
		}
		return Verdict{}, c.ioError(ctx, "INSTREAM", a.err)
	}
	return scanVerdict(a.reply)
}

// scanVerdict reads an answer to INSTREAM.
func scanVerdict(reply string) (Verdict, error) {
	const prefix = "stream: "
	switch {
	case reply == prefix+"OK":
		return Verdict{}, nil
	case strings.HasPrefix(reply, prefix) && strings.HasSuffix(reply, " FOUND"):
		sig := strings.TrimSuffix(strings.TrimPrefix(reply, prefix), " FOUND")
		if strings.HasPrefix(sig, "Heuristics.Limits.Exceeded") {
			return Verdict{}, fmt.Errorf("%w: %s", ErrTooLarge, sig)
		}
		return Verdict{Infected: true, Signature: sig}, nil
	case strings.HasPrefix(reply, "INSTREAM size limit exceeded"):
		return Verdict{}, fmt.Errorf("%w: %s", ErrTooLarge, reply)
	}
	return Verdict{}, &ReplyError{Command: "INSTREAM", Reply: reply}
}

// readReply reads one answer up to its NUL (or the end of the connection),
// at most maxReply bytes.
func readReply(r io.Reader) (string, error) {
	var out []byte
	buf := make([]byte, 512)
	for len(out) < maxReply {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if i := bytes.IndexByte(out, 0); i >= 0 {
			return strings.TrimSpace(string(out[:i])), nil
		}
		if err == io.EOF && len(out) > 0 {
			return strings.TrimSpace(string(out)), nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("an answer longer than %d bytes", maxReply)
}
