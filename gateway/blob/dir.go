package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Dir is the Store of plain files under one directory: the blob under key
// "a/b/c" is the file <root>/a/b/c, holding exactly its bytes, with its
// content type in the extended attribute user.parley.content_type. Puts are
// staged in <root>/.tmp (on the same filesystem, so a rename publishes
// them). See the package doc for the crash behaviour.
type Dir struct {
	root, tmp string
}

const (
	tmpDirName   = ".tmp"
	contentXattr = "user.parley.content_type"
	// staleTemp is the age beyond which NewDir removes a staged file: a
	// Put in progress keeps writing to its file, so only a crashed one's
	// file gets that old.
	staleTemp = time.Hour
)

// NewDir opens (creating it if needed) the Dir store in root. It removes
// staged files left by a crash more than an hour ago and checks that the
// filesystem keeps user extended attributes.
func NewDir(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("blob: Dir needs a directory")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	d := &Dir{root: root, tmp: filepath.Join(root, tmpDirName)}
	if err := os.MkdirAll(d.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	if err := d.removeStale(time.Now().Add(-staleTemp)); err != nil {
		return nil, err
	}
	if err := d.probeXattr(); err != nil {
		return nil, err
	}
	return d, nil
}

// Root is the directory of the store.
func (d *Dir) Root() string { return d.root }

func (d *Dir) removeStale(before time.Time) error {
	entries, err := os.ReadDir(d.tmp)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || fi.IsDir() || !fi.ModTime().Before(before) {
			continue
		}
		if err := os.Remove(filepath.Join(d.tmp, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("blob: removing a stale staged file: %w", err)
		}
	}
	return nil
}

func (d *Dir) probeXattr() error {
	f, err := os.CreateTemp(d.tmp, "probe-*")
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := unix.Fsetxattr(int(f.Fd()), contentXattr, []byte(DefaultContentType), 0); err != nil {
		return fmt.Errorf("blob: %s cannot keep user extended attributes (%v), where Dir keeps each blob's content type: put it on ext4, xfs, btrfs or zfs", d.root, err)
	}
	return nil
}

func (d *Dir) path(key string) string { return filepath.Join(d.root, filepath.FromSlash(key)) }

// Put implements Store.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (err error) {
	if err := checkKey(key); err != nil {
		return err
	}
	if contentType == "" {
		contentType = DefaultContentType
	}
	f, err := os.CreateTemp(d.tmp, "put-*")
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	staged := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(staged)
		}
	}()
	// io.Copy uses a 32 KiB buffer (or copy_file_range/splice when r is a
	// file or a socket); the blob is never in memory.
	if _, err := io.Copy(f, newExactReader(ctx, r, size)); err != nil {
		return fmt.Errorf("blob: put %s: %w", key, err)
	}
	if err := unix.Fsetxattr(int(f.Fd()), contentXattr, []byte(contentType), 0); err != nil {
		return fmt.Errorf("blob: put %s: content type: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blob: put %s: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("blob: put %s: %w", key, err)
	}
	dst := d.path(key)
	if err := d.mkdirs(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("blob: put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob: put %s: %w", key, err)
	}
	if err := os.Rename(staged, dst); err != nil {
		return fmt.Errorf("blob: put %s: %w", key, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("blob: put %s: the blob is in place but its directory was not synced: %w", key, err)
	}
	return nil
}

// mkdirs creates dir and its missing parents below the root, syncing the
// parent of each one created, so the path to a renamed file survives a
// power cut as well as the file.
func (d *Dir) mkdirs(dir string) error {
	if dir == d.root {
		return nil
	}
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is a blob, not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if err := d.mkdirs(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // a concurrent Put made it (and syncs its parent)
		}
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Open implements Store.
func (d *Dir) Open(_ context.Context, key string) (Object, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(d.path(key))
	if err != nil {
		return nil, d.err("open", key, err)
	}
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		f.Close()
		if err == nil {
			err = fs.ErrNotExist
		}
		return nil, d.err("open", key, err)
	}
	return &dirObject{File: f, info: Info{Size: fi.Size(), ModTime: fi.ModTime(), ContentType: fileContentType(f)}}, nil
}

type dirObject struct {
	*os.File
	info Info
}

func (o *dirObject) Info() Info { return o.info }

// OSFile is the open file, so a server can send it with sendfile(2).
func (o *dirObject) OSFile() *os.File { return o.File }

func fileContentType(f *os.File) string {
	buf := make([]byte, 256)
	for {
		n, err := unix.Fgetxattr(int(f.Fd()), contentXattr, buf)
		if errors.Is(err, unix.ERANGE) && len(buf) < 1<<16 {
			buf = make([]byte, 4*len(buf))
			continue
		}
		if err != nil || n == 0 {
			return DefaultContentType // a file put there by other means
		}
		return string(buf[:n])
	}
}

// Stat implements Store.
func (d *Dir) Stat(_ context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	f, err := os.Open(d.path(key))
	if err != nil {
		return Info{}, d.err("stat", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		err = fs.ErrNotExist
	}
	if err != nil {
		return Info{}, d.err("stat", key, err)
	}
	return Info{Size: fi.Size(), ModTime: fi.ModTime(), ContentType: fileContentType(f)}, nil
}

// Delete implements Store.
func (d *Dir) Delete(_ context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	p := d.path(key)
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return nil // a directory of other keys is no blob
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("blob: delete %s: %w", key, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("blob: delete %s: %w", key, err)
	}
	return nil
}

// Touch implements Store: it sets the file's modification time and syncs
// the file, so a crash does not take the new time back.
func (d *Dir) Touch(_ context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	f, err := os.OpenFile(d.path(key), os.O_WRONLY, 0)
	if err != nil {
		return d.err("touch", key, err)
	}
	defer f.Close()
	now := time.Now()
	if err := os.Chtimes(f.Name(), now, now); err != nil {
		return d.err("touch", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blob: touch %s: %w", key, err)
	}
	return nil
}

// List implements Store.
func (d *Dir) List(ctx context.Context, prefix string, fn func(key string, info Info) error) error {
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == d.root {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if e.IsDir() {
			// Descend only where keys with the prefix can be.
			if key == tmpDirName || !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(key, prefix) || !ValidKey(key) {
			return nil
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		return fn(key, Info{Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("blob: list %q: %w", prefix, err)
	}
	return nil
}

// err maps a missing file (or a path through a file) to ErrNotFound.
func (d *Dir) err(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return fmt.Errorf("blob: %s %s: %w", op, key, err)
}
