package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/parley-im/parley/gateway"
	"github.com/parley-im/parley/gateway/blob"
	"github.com/parley-im/parley/projector/notify"
	"github.com/parley-im/parley/projector/push"
	"github.com/parley-im/parley/query"
	"github.com/parley-im/parley/schemas/examples/echobot"
	"github.com/parley-im/parley/testenv"
	"github.com/parley-im/parley/testenv/system"
)

// SupervisorEnv names the pid of the process that runs `dev` on someone's
// behalf (the task runner: `go tool task dev`). dev stops when that process
// is gone and, when dev stops first, tells it to end.
//
// Why: go-task catches SIGINT and SIGTERM and passes neither on, trusting
// that the signal went to the whole process group, as Ctrl-C in a terminal
// does. A `kill -TERM` aimed at `go tool task dev` alone (a script, a
// process manager) therefore never reached dev, and Parley kept serving.
// The dev task runs in go-task's watch mode, in which a signal ends go-task
// at once; dev sees its supervisor go and shuts down as on Ctrl-C.
const SupervisorEnv = "PARLEY_DEV_SUPERVISOR"

// supervisorPoll is how often dev checks that its supervisor still runs.
const supervisorPoll = 200 * time.Millisecond

// dev runs the whole of Parley in this process on top of the background
// env (started if needed) until interrupted, or until its supervisor (see
// SupervisorEnv) is gone. The env stays up afterwards; `testenv down`
// stops it.
func dev(ctx context.Context, env *testenv.Env, dir string, gatewayPort, queryPort int) error {
	ctx, stopWatch := watchSupervisor(ctx, os.Getenv(SupervisorEnv))
	defer stopWatch()
	secret, err := devSecret(filepath.Join(dir, "dev-jwt-secret"))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	blobs, err := blob.NewDir(filepath.Join(dir, "blobs"))
	if err != nil {
		return err
	}
	adminSecret, err1 := devSecret(filepath.Join(dir, "dev-admin-secret"))
	signing, err2 := devSecret(filepath.Join(dir, "dev-webhook-signing-key"))
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	// The dev admin key: every scope, acting as anyone. Its secret is the
	// hex of the file's bytes.
	adminKey := "dev." + hex.EncodeToString(adminSecret)
	sys, err := system.Start(ctx, system.Options{
		Seeds: env.KafkaSeeds, Hosts: env.CassandraHosts, Keyspace: devKeyspace,
		GatewayPort: gatewayPort, QueryPort: queryPort, Secret: secret, DevTokens: true, Logger: log,
		QueryRatePerSecond: query.DefaultRatePerSecond, QueryBurst: query.DefaultBurst,
		GatewayAttachments: gateway.Attachments{Store: blobs, StagingDir: filepath.Join(dir, "uploads")},
		GatewayAdminKeys: gateway.AdminKeys{Keys: []gateway.AdminKey{{ID: "dev", SHA256: gateway.HashAdminSecret(hex.EncodeToString(adminSecret)),
			Scopes: gateway.Scopes, ActAs: []string{"*"}}}},
		// Loopback bots over plain HTTP: dev only.
		Webhooks: &notify.DispatcherConfig{SigningKey: signing, Poster: push.PosterConfig{AllowHTTP: true, AllowPrivate: true}},
	})
	if err != nil {
		return err
	}
	defer sys.Close()
	gw := sys.GatewayURLs[0]
	botURL, err := startEchoBot(ctx, log, gw, adminKey)
	if err != nil {
		return err
	}
	fmt.Printf(`
Parley is running.
  web client:          %[1]s/              (open it in a browser; sign in as any user name)
  (plain HTTP on loopback, for development only; production serves TLS: README, "Deploying")
  gateway (WebSocket): %[1]s/v1/ws        metrics: %[1]s/metrics
  query (HTTP JSON):   %[2]s/v1/inbox     metrics: %[2]s/metrics
  topics:              %[3]s
  keyspace:            %[4]s
  attachments:         %[5]s/blobs (local files)

Get a dev token (dev only: signed with a secret kept in %[5]s):
  curl -s '%[1]s/v1/dev/token?user=alice&device=laptop'

The admin API's dev key (every scope, any user):
  Authorization: Bearer %[6]s
An echo bot (schemas/examples/echobot, webhook at %[7]s) answers every message
of the conversations user echo-bot is in; add it to one:
  curl -s -H 'Authorization: Bearer %[6]s' -d '{"asUserId":"alice","userIds":["echo-bot"]}' \
    %[1]s/v1/admin/conversations/<conversation>/members

The README's walkthrough shows a conversation end to end. Ctrl-C (or SIGTERM to
'go tool task dev') stops Parley; 'go tool task env:down' then stops Kafka and
Cassandra.
`, gw, sys.QueryURL, topicNames(sys), devKeyspace, dir, adminKey, botURL)
	<-ctx.Done()
	fmt.Println("stopping Parley (Kafka and Cassandra keep running)")
	return nil
}

// watchSupervisor returns a context that also ends when the process pid
// (decimal; "" or "0" means none) is gone. Its stop function ends the
// watch and, when the supervisor still runs (dev stopped on its own, e.g.
// on an error or a signal of its own), sends it SIGTERM so it does not wait
// for a dev that has ended.
func watchSupervisor(ctx context.Context, pid string) (context.Context, func()) {
	n, err := strconv.Atoi(strings.TrimSpace(pid))
	if err != nil || n <= 0 || n == os.Getpid() {
		return ctx, func() {}
	}
	alive := func() bool {
		err := syscall.Kill(n, 0)
		return err == nil || errors.Is(err, syscall.EPERM)
	}
	if !alive() {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var gone atomic.Bool
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(supervisorPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-t.C:
				if !alive() {
					gone.Store(true)
					fmt.Fprintf(os.Stderr, "testenv: the task runner (pid %d) has ended\n", n)
					cancel()
					return
				}
			}
		}
	}()
	return ctx, func() {
		close(done)
		cancel()
		if !gone.Load() && alive() {
			_ = syscall.Kill(n, syscall.SIGTERM)
		}
	}
}

func topicNames(sys *system.System) string {
	var n []string
	for _, t := range sys.Topics.All() {
		n = append(n, t.Name)
	}
	return strings.Join(n, ", ")
}

// devSecret returns the dev HMAC secret, creating it on first use, so dev
// tokens survive a restart of `dev`. It never leaves the state directory.
func devSecret(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err == nil {
		return hex.DecodeString(strings.TrimSpace(string(b)))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	if err := os.WriteFile(file, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return secret, nil
}

// startEchoBot serves the example echo bot on a loopback port until ctx
// ends and subscribes its webhook (user echo-bot, the conversations it is
// a member of) through the admin API; it returns the webhook's URL.
func startEchoBot(ctx context.Context, log *slog.Logger, gw, adminKey string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	url := "http://" + ln.Addr().String() + "/"
	bot := &echobot.Bot{UserID: "echo-bot", AdminURL: gw, AdminKey: adminKey, Logger: log.With("part", "echobot")}
	var secret atomic.Pointer[[]byte]
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := *bot
		if s := secret.Load(); s != nil {
			b.Secret = *s
		}
		b.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	// A new port each run: the webhook id follows it, and the webhooks of
	// earlier runs are deleted first.
	body, _ := json.Marshal(map[string]any{"webhookId": "dev-echo-" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), "url": url,
		"memberConversations": true, "eventTypes": []string{"MessageSent"}})
	var out struct {
		Secret   string `json:"secret"`
		Webhooks []struct {
			WebhookID string `json:"webhookId"`
		} `json:"webhooks"`
	}
	call := func(method, path string, body []byte) (int, error) {
		req, err := http.NewRequestWithContext(ctx, method, gw+path, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+adminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(&out)
	}
	if status, err := call(http.MethodGet, "/v1/admin/users/echo-bot/webhooks", nil); err == nil && status == http.StatusOK {
		for _, w := range out.Webhooks {
			_, _ = call(http.MethodDelete, "/v1/admin/users/echo-bot/webhooks/"+w.WebhookID, nil)
		}
	}
	status, err := call(http.MethodPost, "/v1/admin/users/echo-bot/webhooks", body)
	if err != nil || status/100 != 2 || out.Secret == "" {
		return "", fmt.Errorf("dev: subscribe the echo bot: HTTP %d %v", status, err)
	}
	s := []byte(out.Secret)
	secret.Store(&s)
	return url, nil
}
