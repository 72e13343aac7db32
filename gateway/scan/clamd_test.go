package scan_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/gateway/scan"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func client(c *testenv.ClamdServer) scan.Clamd {
	return scan.Clamd{Network: c.Network, Address: c.Address, Timeout: 30 * time.Second}
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestClamd runs the protocol against a real clamd, over a unix socket and
// over TCP: PING, VERSION, a clean stream, the EICAR test file alone, inside
// a larger stream and across chunk boundaries, an empty stream, and many
// scans at once.
func TestClamd(t *testing.T) {
	t.Parallel()
	for _, tcp := range []bool{false, true} {
		name := "unix"
		if tcp {
			name = "tcp"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := testenv.ClamdWith(t, testenv.ClamdOptions{TCP: tcp})
			c := client(srv)
			ctx := context.Background()
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("ping: %v", err)
			}
			v, err := c.Version(ctx)
			if err != nil || !strings.HasPrefix(v, "ClamAV ") {
				t.Fatalf("version %q, %v", v, err)
			}
			eicar := testenv.EICAR()
			want := testenv.EICARSignature + ".UNOFFICIAL"
			clean := random(3<<20 + 17)
			embedded := append(append(random(1<<20+3), eicar...), random(5000)...)
			for _, tc := range []struct {
				name     string
				body     []byte
				chunk    int
				infected bool
			}{
				{"empty", nil, 0, false},
				{"clean", clean, 0, false},
				{"clean in small chunks", clean[:200<<10], 1000, false},
				{"eicar", eicar, 0, true},
				{"eicar in chunks of 7", eicar, 7, true},
				{"eicar inside", embedded, 0, true},
				{"eicar across chunks", embedded, 1 << 20, true},
			} {
				c := c
				c.ChunkSize = tc.chunk
				got, err := c.Scan(ctx, bytes.NewReader(tc.body))
				if err != nil {
					t.Errorf("%s: %v", tc.name, err)
					continue
				}
				if got.Infected != tc.infected || (tc.infected && got.Signature != want) || (!tc.infected && got.Signature != "") {
					t.Errorf("%s: %+v, want infected %v (%s)", tc.name, got, tc.infected, want)
				}
			}
			// Many at once, each on its own connection.
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body, infected := random(64<<10), i%2 == 0
					if infected {
						body = append(body, eicar...)
					}
					v, err := c.Scan(ctx, bytes.NewReader(body))
					if err == nil && v.Infected != infected {
						err = errors.New("wrong verdict")
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("concurrent scan: %v", err)
				}
			}
		})
	}
}

// TestClamdLimits: a stream past clamd's StreamMaxLength is ErrTooLarge,
// answered as soon as it passes the limit; with AlertExceedsMax, a file past
// MaxFileSize is ErrTooLarge too, not an infection.
func TestClamdLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testenv.ClamdWith(t, testenv.ClamdOptions{StreamMaxLength: 1 << 20})
	c := client(srv)
	if v, err := c.Scan(ctx, bytes.NewReader(random(1<<20-100))); err != nil || v.Infected {
		t.Fatalf("a stream within the limit: %+v, %v", v, err)
	}
	// A reader far longer than the limit: Scan stops at clamd's answer,
	// not at the reader's end.
	long := &countingReader{r: io.LimitReader(rand.Reader, 1<<30)}
	_, err := c.Scan(ctx, long)
	if !errors.Is(err, scan.ErrTooLarge) {
		t.Fatalf("a stream past StreamMaxLength: %v, want ErrTooLarge", err)
	}
	t.Logf("past StreamMaxLength after %d bytes read: %v", long.n, err)
	if long.n > 16<<20 {
		t.Errorf("Scan read %d bytes of a stream clamd refused after 1 MiB", long.n)
	}

	heur := testenv.ClamdWith(t, testenv.ClamdOptions{MaxFileSize: 1 << 20, MaxScanSize: 1 << 20, AlertExceedsMax: true})
	body := append(random(2<<20), testenv.EICAR()...)
	v, err := client(heur).Scan(ctx, bytes.NewReader(body))
	if !errors.Is(err, scan.ErrTooLarge) || v.Infected {
		t.Fatalf("a file past MaxFileSize with AlertExceedsMax: %+v, %v, want ErrTooLarge", v, err)
	}
	t.Logf("past MaxFileSize: %v", err)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestClamdUnreachable: a stopped clamd, a clamd that never answers (bounded
// by Timeout), a cancelled context and a failing reader are errors, never a
// verdict.
func TestClamdUnreachable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testenv.Clamd(t)
	c := client(srv)
	srv.Stop()
	if v, err := c.Scan(ctx, bytes.NewReader([]byte("hello"))); err == nil {
		t.Fatalf("scan with clamd stopped: %+v", v)
	}
	if err := c.Ping(ctx); err == nil {
		t.Fatal("ping with clamd stopped answered")
	}
	srv.Start()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping after the restart: %v", err)
	}

	// A listener that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, conn); conn.Close() }()
		}
	}()
	mute := scan.Clamd{Network: "tcp", Address: ln.Addr().String(), Timeout: 300 * time.Millisecond}
	t0 := time.Now()
	if v, err := mute.Scan(ctx, bytes.NewReader(random(1000))); err == nil {
		t.Fatalf("a mute clamd gave %+v", v)
	} else if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Errorf("a mute clamd: %v, want a timeout", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("the timeout of 300ms took %s", d)
	}
	cctx, cancel := context.WithCancel(ctx)
	mute.Timeout = time.Hour
	done := make(chan error, 1)
	go func() { _, err := mute.Scan(cctx, bytes.NewReader(random(1000))); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled scan: %v, want context.Canceled", err)
	}

	broken := io.MultiReader(bytes.NewReader(random(1000)), errReader{})
	if v, err := c.Scan(ctx, broken); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("a failing reader: %+v, %v", v, err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestReplies: answers a command does not have are *ReplyError.
func TestReplies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ reply, command string }{
		{"stream: Can't allocate memory ERROR", "INSTREAM"},
		{"UNKNOWN COMMAND", "PING"},
		{"UNKNOWN COMMAND", "VERSION"},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = conn.Write([]byte(tc.reply + "\x00"))
		}()
		c := scan.Clamd{Network: "tcp", Address: ln.Addr().String(), Timeout: 5 * time.Second}
		var got error
		switch tc.command {
		case "INSTREAM":
			_, got = c.Scan(context.Background(), bytes.NewReader([]byte("x")))
		case "PING":
			got = c.Ping(context.Background())
		case "VERSION":
			_, got = c.Version(context.Background())
		}
		var re *scan.ReplyError
		if !errors.As(got, &re) || re.Reply != tc.reply || re.Command != tc.command {
			t.Errorf("%s answered %q: %v, want a *ReplyError", tc.command, tc.reply, got)
		}
		ln.Close()
	}
}

// TestFromEnv: off by default; tcp and unix addresses; a bad address or
// timeout is named.
func TestFromEnv(t *testing.T) {
	t.Parallel()
	e := deploy.EnvFrom(nil)
	c, err := scan.FromEnv(e)
	if err != nil || e.Err() != nil || c.Enabled() || c.Timeout != scan.DefaultTimeout {
		t.Fatalf("defaults: %+v, %v, %v", c, err, e.Err())
	}
	for _, tc := range []struct{ in, network, address string }{
		{"tcp:127.0.0.1:3310", "tcp", "127.0.0.1:3310"},
		{"tcp:clamd.internal:3310", "tcp", "clamd.internal:3310"},
		{"tcp:[::1]:3310", "tcp", "[::1]:3310"},
		{"unix:/run/clamav/clamd.ctl", "unix", "/run/clamav/clamd.ctl"},
	} {
		e := deploy.EnvFrom(map[string]string{"PARLEY_GATEWAY_CLAMD": tc.in, "PARLEY_GATEWAY_CLAMD_TIMEOUT": "5s"})
		c, err := scan.FromEnv(e)
		if err != nil || e.Err() != nil || !c.Enabled() || c.Network != tc.network || c.Address != tc.address || c.Timeout != 5*time.Second {
			t.Errorf("%q: %+v, %v, %v", tc.in, c, err, e.Err())
		}
		if cl := c.Clamd(); cl.Network != tc.network || cl.Address != tc.address || cl.Timeout != 5*time.Second {
			t.Errorf("%q: client %+v", tc.in, cl)
		}
	}
	for _, bad := range []string{"127.0.0.1:3310", "tcp:", "tcp:localhost", "tcp::3310", "udp:127.0.0.1:3310", "unix:"} {
		if _, err := scan.FromEnv(deploy.EnvFrom(map[string]string{"PARLEY_GATEWAY_CLAMD": bad})); err == nil || !strings.Contains(err.Error(), "PARLEY_GATEWAY_CLAMD") {
			t.Errorf("%q: %v, want an error naming PARLEY_GATEWAY_CLAMD", bad, err)
		}
	}
	e = deploy.EnvFrom(map[string]string{"PARLEY_GATEWAY_CLAMD": "tcp:127.0.0.1:3310", "PARLEY_GATEWAY_CLAMD_TIMEOUT": "soon"})
	_, _ = scan.FromEnv(e)
	if e.Err() == nil || !strings.Contains(e.Err().Error(), "PARLEY_GATEWAY_CLAMD_TIMEOUT") {
		t.Errorf("a bad timeout: %v", e.Err())
	}
}
