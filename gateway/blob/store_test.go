package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/parley-im/parley/gateway/blob"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// backend is one implementation under test, described by the settings a
// gateway would read (PARLEY_BLOB_*), so the child process of the crash
// test opens the very same store.
type backend struct {
	name string
	env  func(t testing.TB) map[string]string
	// leftovers lists what failed Puts left behind, invisible under any
	// key: staged files (dir), incomplete multipart uploads (s3).
	leftovers func(t testing.TB, env map[string]string) []string
}

var dirBackend = backend{
	name: "dir",
	env: func(t testing.TB) map[string]string {
		return map[string]string{"PARLEY_BLOB_BACKEND": "dir", "PARLEY_BLOB_DIR": t.TempDir()}
	},
	leftovers: func(t testing.TB, env map[string]string) []string {
		entries, err := os.ReadDir(filepath.Join(env["PARLEY_BLOB_DIR"], ".tmp"))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, filepath.Join(env["PARLEY_BLOB_DIR"], ".tmp", e.Name()))
		}
		return out
	},
}

var s3Backend = backend{
	name: "s3",
	env: func(t testing.TB) map[string]string {
		s := testenv.S3(t)
		return map[string]string{
			"PARLEY_BLOB_BACKEND": "s3", "PARLEY_BLOB_S3_ENDPOINT": s.Endpoint, "PARLEY_BLOB_S3_BUCKET": s.Bucket,
			"PARLEY_BLOB_S3_ACCESS_KEY": s.AccessKey, "PARLEY_BLOB_S3_SECRET_KEY": s.SecretKey,
			"PARLEY_BLOB_S3_REGION": s.Region, "PARLEY_BLOB_S3_TLS": "false",
		}
	},
	leftovers: func(t testing.TB, env map[string]string) []string {
		cl, err := minio.New(env["PARLEY_BLOB_S3_ENDPOINT"], &minio.Options{
			Creds: credentials.NewStaticV4(env["PARLEY_BLOB_S3_ACCESS_KEY"], env["PARLEY_BLOB_S3_SECRET_KEY"], ""),
		})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for u := range cl.ListIncompleteUploads(context.Background(), env["PARLEY_BLOB_S3_BUCKET"], "", true) {
			if u.Err != nil {
				t.Fatalf("listing incomplete uploads: %v", u.Err)
			}
			out = append(out, u.Key)
		}
		return out
	},
}

func openStore(t testing.TB, env map[string]string) blob.Store {
	t.Helper()
	c, err := blob.FromEnv(deploy.EnvFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	s, err := blob.New(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBlobDir(t *testing.T) { testStore(t, dirBackend) }

func TestBlobS3(t *testing.T) { testStore(t, s3Backend) }

// testStore is the conformance suite every backend passes. Each case gets
// a store of its own (a fresh directory, a fresh bucket). The cases run
// one after the other: one of them measures the heap.
func testStore(t *testing.T, be backend) {
	ctx := context.Background()
	fresh := func(t *testing.T) (blob.Store, map[string]string) {
		env := be.env(t)
		return openStore(t, env), env
	}
	key := testKey(t, "any content")

	t.Run("PutOpenRead", func(t *testing.T) {
		s, _ := fresh(t)
		data := randomBytes(1<<20 + 17)
		t0 := time.Now()
		put(t, s, key, data, "image/png")
		o, err := s.Open(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		checkInfo(t, o.Info(), int64(len(data)), "image/png", t0)
		got, err := io.ReadAll(o)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes (%v); want the %d put", len(got), err, len(data))
		}
	})

	t.Run("RangeSeekRead", func(t *testing.T) {
		s, _ := fresh(t)
		data := randomBytes(3<<20 + 5)
		put(t, s, key, data, "video/mp4")
		o, err := s.Open(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		for _, r := range []struct{ off, n int64 }{{2 << 20, 1000}, {0, 10}, {int64(len(data)) - 7, 7}, {12345, 1 << 20}} {
			if pos, err := o.Seek(r.off, io.SeekStart); err != nil || pos != r.off {
				t.Fatalf("Seek(%d) = %d, %v", r.off, pos, err)
			}
			buf := make([]byte, r.n)
			if _, err := io.ReadFull(o, buf); err != nil || !bytes.Equal(buf, data[r.off:r.off+r.n]) {
				t.Fatalf("read %d at %d: %v or wrong bytes", r.n, r.off, err)
			}
		}
		if end, err := o.Seek(0, io.SeekEnd); err != nil || end != int64(len(data)) {
			t.Fatalf("Seek(0, End) = %d, %v; want %d", end, err, len(data))
		}
		buf := make([]byte, 4096)
		if n, err := o.ReadAt(buf, 1<<20); err != nil || !bytes.Equal(buf[:n], data[1<<20:1<<20+4096]) {
			t.Fatalf("ReadAt = %d, %v or wrong bytes", n, err)
		}
		// What a download handler does: http.ServeContent answers a Range.
		req := httptest.NewRequest(http.MethodGet, "/blob", nil)
		req.Header.Set("Range", "bytes=1000000-1999999")
		rec := httptest.NewRecorder()
		rec.Header().Set("Content-Type", o.Info().ContentType)
		http.ServeContent(rec, req, "", o.Info().ModTime, o)
		want := fmt.Sprintf("bytes 1000000-1999999/%d", len(data))
		if rec.Code != http.StatusPartialContent || rec.Header().Get("Content-Range") != want || !bytes.Equal(rec.Body.Bytes(), data[1000000:2000000]) {
			t.Fatalf("ServeContent with a Range: %d, Content-Range %q, %d bytes; want 206, %q and the range",
				rec.Code, rec.Header().Get("Content-Range"), rec.Body.Len(), want)
		}
	})

	t.Run("Stat", func(t *testing.T) {
		s, _ := fresh(t)
		t0 := time.Now()
		put(t, s, key, []byte("hello"), "")
		info, err := s.Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		checkInfo(t, info, 5, blob.DefaultContentType, t0)
	})

	t.Run("MissingKeyIsNotFound", func(t *testing.T) {
		s, _ := fresh(t)
		put(t, s, key, []byte("x"), "text/plain") // a neighbour, not the key asked for
		missing := testKey(t, "never stored")
		if _, err := s.Open(ctx, missing); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Open of a missing key: %v; want ErrNotFound", err)
		}
		if _, err := s.Stat(ctx, missing); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Stat of a missing key: %v; want ErrNotFound", err)
		}
		if err := s.Touch(ctx, missing); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Touch of a missing key: %v; want ErrNotFound", err)
		}
		// A prefix of a stored key is no blob either.
		prefix := key[:strings.LastIndex(key, "/")]
		if _, err := s.Stat(ctx, prefix); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Stat of %s, a prefix of a key: %v; want ErrNotFound", prefix, err)
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		s, _ := fresh(t)
		put(t, s, key, randomBytes(100_000), "image/jpeg")
		data := randomBytes(1234)
		put(t, s, key, data, "image/webp")
		got, info := readAll(t, s, key)
		if !bytes.Equal(got, data) || info.Size != 1234 || info.ContentType != "image/webp" {
			t.Fatalf("after overwrite: %d bytes, %+v; want the second put", len(got), info)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		s, _ := fresh(t)
		put(t, s, key, []byte("doomed"), "")
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Stat after Delete: %v; want ErrNotFound", err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("second Delete: %v; want nil", err)
		}
		if err := s.Delete(ctx, testKey(t, "never stored")); err != nil {
			t.Fatalf("Delete of a key never stored: %v; want nil", err)
		}
	})

	t.Run("TouchRefreshesModTime", func(t *testing.T) {
		s, env := fresh(t)
		for _, n := range []int{70_000, 0} {
			k := testKey(t, "touched "+strconv.Itoa(n))
			data := randomBytes(n)
			put(t, s, k, data, "audio/ogg")
			before, err := s.Stat(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			// S3 keeps modification times to the second: touch until
			// the next one.
			testenv.Eventually(t, 10*time.Second, func() string {
				if err := s.Touch(ctx, k); err != nil {
					return err.Error()
				}
				after, err := s.Stat(ctx, k)
				if err != nil {
					return err.Error()
				}
				if !after.ModTime.After(before.ModTime) {
					return fmt.Sprintf("%d bytes: mod time %s after Touch, not later than %s", n, after.ModTime, before.ModTime)
				}
				return ""
			})
			got, after := readAll(t, s, k)
			if !bytes.Equal(got, data) || after.ContentType != "audio/ogg" || after.ModTime.Before(t0.Truncate(time.Second)) {
				t.Fatalf("after Touch: %d bytes, %+v; want the same %d bytes and type, mod time from %s", len(got), after, n, t0)
			}
		}
		noLeftovers(t, be, env)
	})

	t.Run("UnknownSize", func(t *testing.T) {
		s, _ := fresh(t)
		// Empty, small, and larger than S3's part, from a reader that
		// hands out odd-sized pieces and has no Seek or ReadAt.
		for _, n := range []int{0, 1000, blob.DefaultPartSize*2 + 333} {
			data := randomBytes(n)
			k := testKey(t, "unknown "+strconv.Itoa(n))
			if err := s.Put(ctx, k, iotest.HalfReader(bytes.NewReader(data)), -1, "application/pdf"); err != nil {
				t.Fatalf("Put of %d bytes, size -1: %v", n, err)
			}
			got, info := readAll(t, s, k)
			if !bytes.Equal(got, data) || info.Size != int64(n) {
				t.Fatalf("size -1: read %d bytes, Info.Size %d; want %d", len(got), info.Size, n)
			}
		}
	})

	t.Run("SizeMismatchStoresNothing", func(t *testing.T) {
		s, env := fresh(t)
		for _, c := range []struct {
			name       string
			data, size int
		}{
			{"short", 1000, 1001}, {"long", 1001, 1000},
			{"short multipart", blob.DefaultPartSize + 10, blob.DefaultPartSize + 11},
			{"long multipart", blob.DefaultPartSize + 11, blob.DefaultPartSize + 10},
		} {
			k := testKey(t, c.name)
			err := s.Put(ctx, k, bytes.NewReader(randomBytes(c.data)), int64(c.size), "")
			if !errors.Is(err, blob.ErrSizeMismatch) {
				t.Errorf("%s: Put of %d bytes as %d: %v; want ErrSizeMismatch", c.name, c.data, c.size, err)
			}
			if _, err := s.Stat(ctx, k); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("%s: Stat after the failed Put: %v; want ErrNotFound", c.name, err)
			}
		}
		noLeftovers(t, be, env)
	})

	t.Run("FailedPutKeepsOldBlob", func(t *testing.T) {
		s, env := fresh(t)
		old := randomBytes(5000)
		put(t, s, key, old, "image/gif")
		boom := errors.New("the device went away")
		for _, n := range []int{100_000, blob.DefaultPartSize + 1<<20} { // single PUT, multipart
			for _, size := range []int64{int64(n) * 2, -1} {
				r := io.MultiReader(bytes.NewReader(randomBytes(n)), iotest.ErrReader(boom))
				if err := s.Put(ctx, key, r, size, "image/png"); !errors.Is(err, boom) {
					t.Fatalf("Put from a reader failing after %d bytes (size %d): %v; want its error", n, size, err)
				}
				got, info := readAll(t, s, key)
				if !bytes.Equal(got, old) || info.ContentType != "image/gif" {
					t.Fatalf("after a failed Put (%d bytes, size %d): %d bytes, %+v; want the old blob", n, size, len(got), info)
				}
			}
		}
		other := testKey(t, "failed first put")
		r := io.MultiReader(bytes.NewReader(randomBytes(1000)), iotest.ErrReader(boom))
		if err := s.Put(ctx, other, r, -1, ""); !errors.Is(err, boom) {
			t.Fatalf("Put: %v; want its reader's error", err)
		}
		if _, err := s.Stat(ctx, other); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Stat after a failed first Put: %v; want ErrNotFound", err)
		}
		noLeftovers(t, be, env)
	})

	t.Run("CancelledPutStoresNothing", func(t *testing.T) {
		s, env := fresh(t)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		// The reader cancels the Put's context after 3 MiB and then would
		// go on forever: only the context can end this Put.
		r := &cancellingReader{r: endless(1), after: 3 << 20, cancel: cancel}
		err := s.Put(cctx, key, r, -1, "")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Put with its context cancelled: %v; want context.Canceled", err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Stat after a cancelled Put: %v; want ErrNotFound", err)
		}
		noLeftovers(t, be, env)
	})

	t.Run("StreamedPutHeapStaysSmall", func(t *testing.T) {
		s, _ := fresh(t)
		const size = 64 << 20
		for _, declared := range []int64{size, -1} {
			h := sha256.New()
			r := io.TeeReader(io.LimitReader(endless(7), size), h)
			var err error
			grew := peakHeapGrowth(func() { err = s.Put(ctx, key, r, declared, "video/mp4") })
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: Put of 64 MiB (size %d): peak heap growth %.1f MiB", be.name, declared, float64(grew)/(1<<20))
			// A part buffer (8 MiB for S3) and what the GC has not yet
			// collected; holding the blob would be 64 MiB or more.
			if grew > 32<<20 {
				t.Fatalf("peak heap grew %.1f MiB during a 64 MiB Put; want it streamed (under 32 MiB)", float64(grew)/(1<<20))
			}
			o, err := s.Open(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			back := sha256.New()
			n, err := io.Copy(back, o)
			o.Close()
			if err != nil || n != size || !bytes.Equal(back.Sum(nil), h.Sum(nil)) {
				t.Fatalf("read back %d bytes (%v), sha256 equal %v; want the 64 MiB put", n, err, bytes.Equal(back.Sum(nil), h.Sum(nil)))
			}
		}
	})

	t.Run("ConcurrentPutsOfOneKey", func(t *testing.T) {
		s, _ := fresh(t)
		data := randomBytes(blob.DefaultPartSize + 1<<20)
		cctx, stop := context.WithCancel(ctx)
		defer stop()
		// A reader alongside: every blob it manages to open is whole.
		readErr := make(chan error, 1)
		go func() {
			var res error
			defer func() { readErr <- res }()
			for reads := 0; cctx.Err() == nil; {
				o, err := s.Open(cctx, key)
				if err != nil {
					if errors.Is(err, blob.ErrNotFound) || cctx.Err() != nil {
						continue
					}
					res = err
					return
				}
				got, err := io.ReadAll(o)
				o.Close()
				if cctx.Err() != nil {
					return
				}
				if err != nil || !bytes.Equal(got, data) {
					res = fmt.Errorf("read %d: %d bytes (%v) while puts ran; want the whole %d", reads, len(got), err, len(data))
					return
				}
				reads++
			}
		}()
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "application/zip")
			}()
		}
		wg.Wait()
		stop()
		if err := <-readErr; err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		got, info := readAll(t, s, key)
		if !bytes.Equal(got, data) || info.ContentType != "application/zip" {
			t.Fatalf("after concurrent puts: %d bytes, %+v", len(got), info)
		}
	})

	t.Run("List", func(t *testing.T) {
		s, _ := fresh(t)
		want := map[string]int64{}
		for i := range 3 {
			k := testKey(t, "listed "+strconv.Itoa(i))
			put(t, s, k, randomBytes(100+i), "")
			want[k] = int64(100 + i)
		}
		other, err := blob.Key("avatars", sha256hex("elsewhere"))
		if err != nil {
			t.Fatal(err)
		}
		put(t, s, other, []byte("x"), "")
		got := map[string]int64{}
		if err := s.List(ctx, "attachments/", func(k string, info blob.Info) error {
			if info.ModTime.IsZero() {
				t.Errorf("List: %s has no mod time", k)
			}
			got[k] = info.Size
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("List(attachments/) = %v; want %v", got, want)
		}
		var all []string
		if err := s.List(ctx, "", func(k string, _ blob.Info) error { all = append(all, k); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(all) != 4 || !slices.Contains(all, other) {
			t.Fatalf("List(\"\") = %v; want the 4 keys", all)
		}
		stopErr := errors.New("enough")
		calls := 0
		if err := s.List(ctx, "", func(string, blob.Info) error { calls++; return stopErr }); !errors.Is(err, stopErr) || calls != 1 {
			t.Fatalf("List with fn failing: %v after %d calls; want fn's error after 1", err, calls)
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		s, _ := fresh(t)
		for _, k := range []string{"", "/abs", "a//b", "a/", "../escape", "a/../../b", ".tmp/x", "a/.hidden", "sp ace", "a\x00b", strings.Repeat("a", blob.MaxKeyBytes+1)} {
			if err := s.Put(ctx, k, strings.NewReader("x"), 1, ""); !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("Put(%q): %v; want ErrInvalidKey", k, err)
			}
			if _, err := s.Open(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("Open(%q): %v; want ErrInvalidKey", k, err)
			}
			if _, err := s.Stat(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("Stat(%q): %v; want ErrInvalidKey", k, err)
			}
			if err := s.Delete(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("Delete(%q): %v; want ErrInvalidKey", k, err)
			}
			if err := s.Touch(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("Touch(%q): %v; want ErrInvalidKey", k, err)
			}
		}
	})

	t.Run("KilledMidPutLeavesNothingVisible", func(t *testing.T) {
		_, env := fresh(t)
		testKilledMidPut(t, be, env)
	})
}

func put(t testing.TB, s blob.Store, key string, data []byte, contentType string) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), contentType); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

func readAll(t testing.TB, s blob.Store, key string) ([]byte, blob.Info) {
	t.Helper()
	o, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("Open %s: %v", key, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return b, o.Info()
}

// checkInfo: the size and type put, and a mod time from the Put (S3 keeps
// whole seconds; allow for a loopback server's clock being ours).
func checkInfo(t testing.TB, info blob.Info, size int64, contentType string, putAt time.Time) {
	t.Helper()
	if info.Size != size || info.ContentType != contentType {
		t.Fatalf("Info = %+v; want size %d, content type %s", info, size, contentType)
	}
	// Stores keep whole seconds, and a file system stamps mtime from the
	// kernel's coarse clock, a few milliseconds behind time.Now: a Put
	// just after a second boundary can be stamped with the second before.
	if info.ModTime.Before(putAt.Truncate(time.Second).Add(-time.Second)) || info.ModTime.After(time.Now().Add(time.Second)) {
		t.Fatalf("Info.ModTime = %s; want the time of the Put, %s", info.ModTime, putAt)
	}
}

func noLeftovers(t testing.TB, be backend, env map[string]string) {
	t.Helper()
	if be.leftovers == nil {
		return
	}
	if l := be.leftovers(t, env); len(l) != 0 {
		t.Fatalf("failed Puts left incomplete uploads behind: %v", l)
	}
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func testKey(t testing.TB, content string) string {
	t.Helper()
	k, err := blob.Key("attachments", sha256hex(content))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(b)
	return b
}

// endless is a reader of pseudo-random bytes that never ends, with no Seek
// or ReadAt.
func endless(seed byte) io.Reader { return struct{ io.Reader }{rand.NewChaCha8([32]byte{seed})} }

type cancellingReader struct {
	r      io.Reader
	after  int
	read   int
	cancel func()
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.read += n; c.read >= c.after {
		c.cancel()
	}
	return n, err
}

// peakHeapGrowth runs f and returns how far the live heap rose above what
// it was before, sampled every 2 ms.
func peakHeapGrowth(f func()) uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base := m.HeapAlloc
	stop, peakc := make(chan struct{}), make(chan uint64)
	go func() {
		peak := base
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
			select {
			case <-stop:
				peakc <- peak
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(stop)
	return <-peakc - base
}
