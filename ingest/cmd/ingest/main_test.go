package main

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/schemas/deploy"
)

func TestConfigDefaults(t *testing.T) {
	cfg, addr, err := config(deploy.EnvFrom(map[string]string{"PARLEY_KAFKA_SEEDS": "a:9092, b:9092", "PARLEY_TOPIC_PREFIX": "t1."}))
	if err != nil {
		t.Fatal(err)
	}
	inst := deploy.InstanceName("t1.", "ingest", deploy.Hostname())
	if len(cfg.Seeds) != 2 || cfg.Group != "t1.parley-ingest" || cfg.Membership.InstanceID != inst || cfg.TransactionalID != inst ||
		cfg.CommandsTopic != "t1.parley.commands" || cfg.StateTopic != "t1.parley.ingest.state" || addr != "127.0.0.1:9101" {
		t.Fatalf("defaults: %+v %s", cfg, addr)
	}
	if cfg.Membership.SessionTimeout != deploy.DefaultSessionTimeout || cfg.Limits.DedupWindow != 7*24*time.Hour || cfg.Limits.DedupPerSender != 1000 {
		t.Fatalf("defaults: %+v", cfg)
	}
	if l := cfg.Limits; l.EditWindow != 24*time.Hour || l.RecallWindow != 24*time.Hour || l.MaxEditsPerMessage != 100 || l.MaxReactionsPerMessage != 32 ||
		l.MaxPins != 50 || l.MaxBlocksPerUser != 10_000 {
		t.Fatalf("defaults: %+v", l)
	}
}

func TestConfigFromEnv(t *testing.T) {
	cfg, _, err := config(deploy.EnvFrom(map[string]string{
		"PARLEY_KAFKA_SEEDS": "k:1", "PARLEY_INGEST_GROUP": "g", "PARLEY_INGEST_TRANSACTIONAL_ID": "txn",
		"PARLEY_INSTANCE_ID": "i-1", "PARLEY_GROUP_SESSION_TIMEOUT": "10s",
		"PARLEY_INGEST_MAX_GROUP_MEMBERS": "50", "PARLEY_INGEST_MAX_MESSAGE_BYTES": "100", "PARLEY_INGEST_MAX_TITLE_BYTES": "10",
		"PARLEY_INGEST_MAX_CLIENT_MSG_ID_BYTES": "20", "PARLEY_INGEST_DEDUP_WINDOW": "72h", "PARLEY_INGEST_DEDUP_PER_SENDER": "5",
		"PARLEY_INGEST_MAX_POLL_RECORDS": "300", "PARLEY_INGEST_TRANSACTION_TIMEOUT": "20s", "PARLEY_INGEST_MAX_HEALTHY_LAG": "7",
		"PARLEY_INGEST_EDIT_WINDOW": "15m", "PARLEY_INGEST_RECALL_WINDOW": "72h", "PARLEY_INGEST_MAX_EDITS_PER_MESSAGE": "9",
		"PARLEY_INGEST_MAX_REACTIONS_PER_MESSAGE": "4", "PARLEY_INGEST_MAX_PINS": "3",
		"PARLEY_INGEST_MAX_BLOCKS_PER_USER": "8",
	}))
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Limits
	if cfg.Group != "g" || cfg.TransactionalID != "txn" || cfg.Membership.InstanceID != "i-1" || cfg.Membership.SessionTimeout != 10*time.Second ||
		l.MaxGroupMembers != 50 || l.MaxMessageBytes != 100 || l.MaxTitleBytes != 10 || l.MaxClientMsgIDBytes != 20 ||
		l.DedupWindow != 72*time.Hour || l.DedupPerSender != 5 || cfg.MaxPollRecords != 300 ||
		cfg.TransactionTimeout != 20*time.Second || cfg.MaxHealthyLag != 7 ||
		l.EditWindow != 15*time.Minute || l.RecallWindow != 72*time.Hour || l.MaxEditsPerMessage != 9 || l.MaxReactionsPerMessage != 4 ||
		l.MaxPins != 3 || l.MaxBlocksPerUser != 8 {
		t.Fatalf("from env: %+v", cfg)
	}
	// The transactional id follows the instance id unless set.
	cfg, _, _ = config(deploy.EnvFrom(map[string]string{"PARLEY_KAFKA_SEEDS": "k:1", "PARLEY_INSTANCE_ID": "i-2"}))
	if cfg.TransactionalID != "i-2" {
		t.Fatalf("transactional id %q", cfg.TransactionalID)
	}
	cfg, _, _ = config(deploy.EnvFrom(map[string]string{"PARLEY_KAFKA_SEEDS": "k:1", "PARLEY_INGEST_STATIC_MEMBERSHIP": "false"}))
	if cfg.Membership.InstanceID != "" || cfg.TransactionalID == "" {
		t.Fatalf("dynamic: %+v", cfg)
	}
}

func TestConfigRefusesBadValues(t *testing.T) {
	_, _, err := config(deploy.EnvFrom(map[string]string{
		"PARLEY_INGEST_DEDUP_WINDOW": "a week", "PARLEY_INGEST_MAX_MESSAGE_BYTES": "-1", "PARLEY_GROUP_SESSION_TIMEOUT": "soon",
	}))
	for _, want := range []string{"PARLEY_INGEST_DEDUP_WINDOW", "PARLEY_INGEST_MAX_MESSAGE_BYTES", "PARLEY_GROUP_SESSION_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	_, _, err = config(deploy.EnvFrom(map[string]string{"PARLEY_KAFKA_SEEDS": "k:1", "PARLEY_GROUP_SESSION_TIMEOUT": "500ms"}))
	if err == nil || !strings.Contains(err.Error(), "session timeout") {
		t.Errorf("a session timeout below 1s: %v", err)
	}
	// Edits and recalls need the send's dedup entry: neither window may
	// outlast the dedup window, also when the dedup window is lowered alone.
	_, _, err = config(deploy.EnvFrom(map[string]string{"PARLEY_KAFKA_SEEDS": "k:1", "PARLEY_INGEST_DEDUP_WINDOW": "12h",
		"PARLEY_INGEST_RECALL_WINDOW": "1h"}))
	if err == nil || !strings.Contains(err.Error(), "EditWindow (24h0m0s) exceeds Limits.DedupWindow (12h0m0s)") || strings.Contains(err.Error(), "RecallWindow") {
		t.Errorf("an edit window past the dedup window: %v", err)
	}
	_, _, err = config(deploy.EnvFrom(map[string]string{"PARLEY_KAFKA_SEEDS": "k:1", "PARLEY_INGEST_RECALL_WINDOW": "200h"}))
	if err == nil || !strings.Contains(err.Error(), "RecallWindow (200h0m0s) exceeds Limits.DedupWindow (168h0m0s)") {
		t.Errorf("a recall window past the dedup window: %v", err)
	}
}
