package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
)

// javaBinary finds a JDK 17 java: $JAVA_HOME/bin/java if set, else java on
// PATH. Cassandra 5.0 supports JDK 11 and 17 only and Kafka 4 brokers need
// 17+, so 17 is the one version both run on.
func javaBinary(ctx context.Context) (string, error) {
	const want = 17
	bin := ""
	if home := os.Getenv("JAVA_HOME"); home != "" {
		bin = filepath.Join(home, "bin", "java")
		if _, err := os.Stat(bin); err != nil {
			bin = ""
		}
	}
	if bin == "" {
		p, err := exec.LookPath("java")
		if err != nil {
			return "", fmt.Errorf("%w: no java found; install a JDK %d (Debian/Ubuntu: apt-get install openjdk-%d-jdk-headless) or set JAVA_HOME to one", ErrMissingTool, want, want)
		}
		bin = p
	}
	out, err := exec.CommandContext(ctx, bin, "-version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: %s -version failed: %v: %s", ErrMissingTool, bin, err, out)
	}
	major, err := javaMajor(string(out))
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrMissingTool, bin, err)
	}
	if major != want {
		return "", fmt.Errorf("%w: %s is JDK %d; Kafka %s and Cassandra %s together need JDK %d (Cassandra 5.0 runs on 11 and 17 only, Kafka 4 needs 17+): install openjdk-%d and set JAVA_HOME to it",
			ErrMissingTool, bin, major, KafkaVersion, CassandraVersion, want, want)
	}
	return bin, nil
}

var javaVersionRE = regexp.MustCompile(`version "(\d+)(?:\.(\d+))?`)

// javaMajor parses `java -version` output ("1.8.0_392" is 8, "17.0.15" is 17).
func javaMajor(out string) (int, error) {
	m := javaVersionRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("cannot read a version from %q", tail(out, 3))
	}
	major, _ := strconv.Atoi(m[1])
	if major == 1 && m[2] != "" {
		major, _ = strconv.Atoi(m[2])
	}
	return major, nil
}
