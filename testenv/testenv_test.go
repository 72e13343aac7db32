package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestJavaMajor(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want int
	}{
		{`openjdk version "17.0.15" 2025-04-15`, 17},
		{`openjdk version "1.8.0_392"`, 8},
		{`java version "21" 2023-09-19`, 21},
		{`openjdk version "25-ea" 2025-09-16`, 25},
	} {
		got, err := javaMajor(tc.out)
		if err != nil || got != tc.want {
			t.Errorf("javaMajor(%q) = %d, %v; want %d", tc.out, got, err, tc.want)
		}
	}
	if _, err := javaMajor("bash: java: command not found"); err == nil {
		t.Error("javaMajor accepted output without a version")
	}
}

func TestPomListsEveryArtifact(t *testing.T) {
	p := string(pom("kafka", kafkaArtifacts))
	for _, a := range kafkaArtifacts {
		if !strings.Contains(p, "<artifactId>"+a.name+"</artifactId><version>"+a.version+"</version>") {
			t.Errorf("pom lacks %s:%s", a.name, a.version)
		}
	}
}

// TestMissingJavaIsClear: with no java anywhere, Start fails with one
// message that says what to install.
func TestMissingJavaIsClear(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("JAVA_HOME", "")
	_, err := Start(context.Background(), Options{Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "install a JDK 17") {
		t.Fatalf("want an install hint, got %v", err)
	}
}

const childVar = "PARLEY_TESTENV_CHILD"

// TestKilledOwnerLeavesNoJVM starts an Env in a child process, SIGKILLs the
// child (no cleanup code runs), and checks the kernel takes both JVMs and
// the S3 server down.
func TestKilledOwnerLeavesNoJVM(t *testing.T) {
	if os.Getenv(childVar) != "" {
		env, err := Start(context.Background(), Options{Dir: os.Getenv(childVar), KafkaHeapMB: 256, CassandraHeapMB: 512})
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewEncoder(os.Stdout).Encode(env)
		select {} // wait to be killed
	}
	if testing.Short() {
		t.Skip("starts its own Kafka and Cassandra")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledOwnerLeavesNoJVM$", "-test.v")
	cmd.Env = append(os.Environ(), childVar+"="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var env Env
	var said []string // the child's test output, for when it fails
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if json.Unmarshal(sc.Bytes(), &env) == nil && env.KafkaPID != 0 {
			break
		}
		said = append(said, sc.Text())
	}
	if env.KafkaPID == 0 || env.CassandraPID == 0 || env.S3PID == 0 {
		_ = cmd.Process.Kill()
		t.Fatalf("child did not report a started env; it said:\n%s", strings.Join(said, "\n"))
	}
	procs := []*proc{{exe: "java", pid: env.KafkaPID}, {exe: "java", pid: env.CassandraPID}, {exe: "versitygw", pid: env.S3PID}}
	for _, p := range procs {
		if !pidAlive(p.pid) || !p.ours() {
			t.Fatalf("%s %d not running before the kill", p.exe, p.pid)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	for _, p := range procs {
		err := WaitFor(context.Background(), time.Minute, func() string {
			if pidAlive(p.pid) && p.ours() {
				return fmt.Sprintf("%s %d outlived its killed owner", p.exe, p.pid)
			}
			return ""
		})
		if err != nil {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			t.Fatal(err)
		}
	}
}
