package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parley-im/parley/testenv"
)

// What bounds the figures: CPU per process, the decider's transactions,
// and a CPU profile of the Parley process.

// cpuTimes reads the CPU time (user+system) used so far by Parley, Kafka,
// Cassandra and this load generator.
func cpuTimes(srv *server) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, pid := range map[string]int{"parley": srv.cmd.Process.Pid, "kafka": srv.env.KafkaPID,
		"cassandra": srv.env.CassandraPID, "load_clients": os.Getpid()} {
		if d, ok := testenv.ProcessCPU(pid); ok && pid != 0 {
			out[name] = d
		}
	}
	// A cluster env: every broker and every node, summed.
	for _, p := range srv.env.Status() {
		if kind, _, ok := strings.Cut(p.Name, "-"); ok && (kind == "kafka" || kind == "cassandra") {
			if d, ok := testenv.ProcessCPU(p.PID); ok {
				out[kind] += d
			}
		}
	}
	return out
}

// cpuShares is the average number of cores each process used between two
// readings.
func cpuShares(a, b map[string]time.Duration, elapsed time.Duration) map[string]float64 {
	out := map[string]float64{}
	total := 0.0
	for k, v := range b {
		cores := float64(v-a[k]) / float64(elapsed)
		out[k] = float64(int(cores*100+0.5)) / 100
		total += cores
	}
	out["total"] = float64(int(total*100+0.5)) / 100
	return out
}

// profileLater takes a CPU profile of the Parley process in the middle of
// the send phase when -cpuprofile is set; the channel closes when done.
func profileLater(ctx context.Context, c config, srv *server, logf func(string, ...any)) <-chan struct{} {
	done := make(chan struct{})
	secs := int(min(30*time.Second, c.Duration-15*time.Second) / time.Second)
	if c.CPUProfile == "" || srv.info.Debug == "" || secs < 1 {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		select {
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
			return
		}
		fetchProfile(srv, fmt.Sprintf("profile?seconds=%d", secs), c.CPUProfile, logf)
	}()
	return done
}

// txnCounters are the decider's transaction metrics at one moment.
type txnCounters struct{ sum, count, commands float64 }

// transactionCounters reads the decider's transaction histogram and command
// counter from the Parley process.
func transactionCounters(srv *server) txnCounters {
	var t txnCounters
	if srv.info.Debug == "" {
		return t
	}
	resp, err := http.Get("http://" + srv.info.Debug + "/metrics")
	if err != nil {
		return t
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		f := strings.Fields(l)
		if len(f) != 2 || strings.HasPrefix(l, "#") {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch {
		case f[0] == "parley_ingest_transaction_seconds_sum":
			t.sum = v
		case f[0] == "parley_ingest_transaction_seconds_count":
			t.count = v
		case strings.HasPrefix(f[0], "parley_ingest_commands_total{"):
			t.commands += v
		}
	}
	return t
}

// transactionStats is what the decider did between two readings: how many
// transactions, how long on average, how many commands each.
func transactionStats(a, b txnCounters) map[string]float64 {
	count := b.count - a.count
	if count <= 0 {
		return nil
	}
	return map[string]float64{"count": count, "mean_ms": (b.sum - a.sum) / count * 1000,
		"commands_per_transaction": (b.commands - a.commands) / count}
}

// fetchProfile writes the Parley process's /debug/pprof/<what> to file.
func fetchProfile(srv *server, what, file string, logf func(string, ...any)) {
	resp, err := http.Get("http://" + srv.info.Debug + "/debug/pprof/" + what)
	if err != nil {
		logf("profile %s: %v", what, err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(file, b, 0o644)
	}
	if err != nil {
		logf("profile %s: %v", what, err)
		return
	}
	logf("%s of the Parley process written to %s; view it with go tool pprof -top %s", what, file, file)
}

// goroutineCount is how many goroutines the Parley process runs.
func goroutineCount(srv *server) int {
	resp, err := http.Get("http://" + srv.info.Debug + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	// The first line: "goroutine profile: total N".
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "goroutine profile: total")))
	return n
}
