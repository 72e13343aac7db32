// Command testenv runs the real Kafka, Cassandra and S3-compatible store
// Parley needs: plain JVMs fetched from Maven Central, and Versity Gateway
// built from the Go module proxy.
//
//	testenv up      start in the background, print the addresses
//	testenv status  show the running env: addresses, pids, RSS
//	testenv down    stop it
//	testenv dev     up, then run all of Parley in this process until Ctrl-C
//	testenv run -- CMD ARGS...   start, run CMD with PARLEY_TESTENV set, stop
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/parley-im/parley/testenv"
)

// childExit is the exit status of the command `run` ran: passed on as is,
// without a message of ours (the command printed its own).
type childExit struct{ code int }

func (c childExit) Error() string { return fmt.Sprintf("exit status %d", c.code) }

func main() {
	if err := run(os.Args[1:]); err != nil {
		var exit childExit
		if errors.As(err, &exit) {
			os.Exit(exit.code)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func usage() error {
	return errors.New("usage: testenv [-dir DIR] [-provision] up|status|down|dev|run -- CMD [ARGS...]")
}

func run(args []string) error {
	fl := flag.NewFlagSet("testenv", flag.ContinueOnError)
	defDir, _ := testenv.DefaultDir()
	dir := fl.String("dir", defDir, "state directory of the background env (data, logs, env.json)")
	prov := fl.Bool("provision", false, "up: also create Parley's topics and migrate the "+devKeyspace+" keyspace")
	gatewayPort := fl.Int("gateway-port", 8080, "dev: gateway port")
	queryPort := fl.Int("query-port", 8081, "dev: query port")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() < 1 {
		return usage()
	}
	sub := fl.Arg(0)
	// Flags may also follow the subcommand: testenv up -provision.
	if err := fl.Parse(fl.Args()[1:]); err != nil {
		return err
	}
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	envFile := filepath.Join(*dir, testenv.EnvFileName)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch sub {
	case "dev":
		env, err := testenv.Up(ctx, *dir, logf)
		if err != nil {
			return err
		}
		printEnv(env, envFile)
		return dev(ctx, env, *dir, *gatewayPort, *queryPort)
	case "up":
		env, err := testenv.Up(ctx, *dir, logf)
		if err != nil {
			return err
		}
		printEnv(env, envFile)
		if *prov {
			return provisionDev(ctx, env)
		}
		return nil
	case "status":
		env, err := testenv.Load(envFile)
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Println("not running")
			return nil
		} else if err != nil {
			return err
		}
		printEnv(env, envFile)
		if !allAlive(env) {
			return errors.New("testenv: env is degraded (a server is gone); run down and up again")
		}
		return nil
	case "down":
		env, err := testenv.Load(envFile)
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Println("not running")
			return nil
		} else if err != nil {
			return err
		}
		env.Stop()
		fmt.Println("stopped")
		return nil
	case "run":
		cmdArgs := fl.Args() // flag parsing consumed the "--"
		if len(cmdArgs) == 0 {
			return usage()
		}
		tmp, err := os.MkdirTemp("", "parley-testenv-")
		if err != nil {
			return err
		}
		t0 := time.Now()
		env, err := testenv.Start(ctx, testenv.Options{Dir: tmp, Logf: logf})
		if err != nil {
			return err
		}
		defer func() {
			env.Stop()
			os.RemoveAll(tmp)
		}()
		logf("testenv: env up in %s; running %v", time.Since(t0).Round(time.Millisecond), cmdArgs)
		cmd := exec.Command(cmdArgs[0], cmdArgs[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), testenv.EnvVar+"="+filepath.Join(tmp, testenv.EnvFileName))
		if err := cmd.Start(); err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return childExit{exit.ExitCode()}
			}
			return err
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-done
			return errors.New("testenv: interrupted")
		}
	default:
		return usage()
	}
}

func allAlive(env *testenv.Env) bool { return env.Alive() }

func printEnv(env *testenv.Env, envFile string) {
	fmt.Printf("kafka:     %s  (Kafka %s)\n", env.KafkaSeeds[0], testenv.KafkaVersion)
	fmt.Printf("cassandra: %s  (Cassandra %s)\n", env.CassandraHosts[0], testenv.CassandraVersion)
	if env.HasS3() {
		fmt.Printf("s3:        %s  (Versity Gateway %s, http, access key %s; the secret is in env.json)\n", env.S3Endpoint, testenv.VersityGatewayVersion, env.S3AccessKey)
	} else {
		fmt.Println("s3:        none: this env was started by an older testenv; run down and up again to get one")
	}
	for _, p := range env.Status() {
		state := "running"
		if !p.Alive {
			state = "NOT RUNNING"
		}
		fmt.Printf("%-10s pid %d %s, RSS %d MiB\n", p.Name+":", p.PID, state, p.RSSKiB/1024)
	}
	fmt.Printf("state:     %s\n", env.Dir)
	fmt.Printf("export %s=%s\n", testenv.EnvVar, envFile)
}
