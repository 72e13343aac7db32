package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// CacheDir is where fetched jars live: $PARLEY_CACHE, else the user cache
// directory (XDG_CACHE_HOME or ~/.cache)/parley. It is outside the repository
// and shared by every checkout of the same user.
func CacheDir() (string, error) {
	if d := os.Getenv("PARLEY_CACHE"); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("testenv: no cache directory (set PARLEY_CACHE): %w", err)
	}
	return filepath.Join(d, "parley"), nil
}

// fetch makes sure the jars of one component are in the cache and returns
// their directory. A completed fetch leaves a marker, so later calls do no
// network and no Maven work at all.
func fetch(ctx context.Context, name, version string, arts []artifact) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "jars", name+"-"+version)
	lib := filepath.Join(dir, "lib")
	marker := filepath.Join(dir, ".complete")
	if _, err := os.Stat(marker); err == nil {
		return lib, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// One fetch at a time per component, across processes (parallel test binaries).
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(marker); err == nil {
		return lib, nil
	}
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return "", fmt.Errorf("%w: %q not found on PATH; install Apache Maven 3.6+ (Debian/Ubuntu: apt-get install maven)", ErrMissingTool, "mvn")
	}
	if err := os.WriteFile(filepath.Join(dir, "pom.xml"), pom(name, arts), 0o644); err != nil {
		return "", err
	}
	_ = os.RemoveAll(lib)
	cmd := exec.CommandContext(ctx, mvn, "-B", "-q", "dependency:copy-dependencies",
		"-DincludeScope=runtime", "-DoutputDirectory=lib")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("testenv: fetching %s %s with Maven failed: %w\n%s", name, version, err, tail(out.String(), 30))
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		return "", err
	}
	return lib, nil
}

func pom(name string, arts []artifact) []byte {
	var b strings.Builder
	b.WriteString(`<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>` + "\n")
	fmt.Fprintf(&b, "<groupId>parley.testenv</groupId><artifactId>%s-jars</artifactId><version>1</version><packaging>pom</packaging>\n<dependencies>\n", name)
	for _, a := range arts {
		fmt.Fprintf(&b, "  <dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version></dependency>\n", a.group, a.name, a.version)
	}
	b.WriteString("</dependencies></project>\n")
	return []byte(b.String())
}

// lockFile takes an exclusive flock on path, waiting for it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ErrMissingTool is returned when java or mvn is absent or too old.
var ErrMissingTool = errors.New("testenv: missing prerequisite")
