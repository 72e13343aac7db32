// Command echobot runs the example echo bot (package echobot).
//
//	PARLEY_ECHOBOT_ADDR            where its webhook listens (default 127.0.0.1:9180)
//	PARLEY_ECHOBOT_USER            the bot's user id (required)
//	PARLEY_ECHOBOT_SECRET_FILE     the webhook's signing secret (or PARLEY_ECHOBOT_SECRET); required
//	PARLEY_ECHOBOT_ADMIN_URL       a gateway's base URL (default http://127.0.0.1:8080)
//	PARLEY_ECHOBOT_ADMIN_KEY_FILE  its admin API key "<id>.<secret>" (or PARLEY_ECHOBOT_ADMIN_KEY); required
//
// It serves plain HTTP: put it behind TLS (the dispatcher refuses plain
// http URLs unless PARLEY_WEBHOOKS_ALLOW_HTTP is set).
package main

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/schemas/examples/echobot"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	env := deploy.NewEnv()
	bot := &echobot.Bot{UserID: env.Required("PARLEY_ECHOBOT_USER"), Secret: env.Secret("PARLEY_ECHOBOT_SECRET"),
		AdminURL: env.String("PARLEY_ECHOBOT_ADMIN_URL", "http://127.0.0.1:8080"),
		AdminKey: string(env.Secret("PARLEY_ECHOBOT_ADMIN_KEY")), Logger: log}
	addr := env.String("PARLEY_ECHOBOT_ADDR", "127.0.0.1:9180")
	err := env.Err()
	if err == nil && (len(bot.Secret) == 0 || bot.AdminKey == "") {
		err = errors.New("PARLEY_ECHOBOT_SECRET(_FILE) and PARLEY_ECHOBOT_ADMIN_KEY(_FILE) are required")
	}
	if err != nil {
		log.Error("echobot", "err", err)
		os.Exit(1)
	}
	log.Info("echobot listening", "addr", addr, "user", bot.UserID)
	srv := &http.Server{Addr: addr, Handler: bot, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Error("echobot", "err", err)
		os.Exit(1)
	}
}
