package replay

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-im/parley/testenv"
)

func cpuProfile(b *testing.B, file string) func() {
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }
}

// cpuTimes returns the CPU seconds used so far by this process and, when
// the env is shared (PARLEY_TESTENV), by Cassandra and Kafka.
func cpuTimes() map[string]float64 {
	out := map[string]float64{"replay": cpuSeconds("self")}
	if f := os.Getenv(testenv.EnvVar); f != "" {
		if env, err := testenv.Load(f); err == nil {
			out["cassandra"] = cpuSeconds(strconv.Itoa(env.CassandraPID))
			out["kafka"] = cpuSeconds(strconv.Itoa(env.KafkaPID))
		}
	}
	return out
}

// cpuSeconds reads utime + stime of /proc/<pid>/stat (clock ticks of 10 ms).
func cpuSeconds(pid string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%s/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100
}
