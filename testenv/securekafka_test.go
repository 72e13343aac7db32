package testenv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestSecureKafka: the secured Kafka takes clients built from the shared
// settings (deploy.Kafka) with SCRAM-SHA-512 and with PLAIN, both over
// TLS; a wrong password and a plaintext client get nowhere.
func TestSecureKafka(t *testing.T) {
	k := StartSecureKafka(t, "reader")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := k.Client(KafkaAdminUser)
	topic := "secure.happy"
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	// SCRAM over TLS produces (the admin is a super user) ...
	if err := admin.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("over scram")}).FirstErr(); err != nil {
		t.Fatalf("produce with SCRAM-SHA-512 over TLS: %v", err)
	}
	// ... and PLAIN over TLS too; both records are read back.
	plain, err := kgo.NewClient(append(k.Opts(k.Plain(KafkaAdminUser)), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("over plain")}).FirstErr(); err != nil {
		t.Fatalf("produce with PLAIN over TLS: %v", err)
	}
	var got []string
	for len(got) < 2 && ctx.Err() == nil {
		fs := plain.PollFetches(ctx)
		if err := fs.Err0(); err != nil && ctx.Err() == nil {
			t.Fatalf("consume: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if len(got) != 2 || got[0] != "over scram" || got[1] != "over plain" {
		t.Fatalf("consumed %q", got)
	}

	// A wrong password is refused at authentication.
	bad := k.SCRAM("reader")
	bad.Password = []byte("not-the-password")
	cl, err := kgo.NewClient(k.Opts(bad)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	// A plaintext client does not get an answer from the TLS listener.
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if err := probeKafka(pctx, k.Seeds[0]); err == nil {
		t.Error("a plaintext client was answered")
	}
}

// TestSecureKafkaClientCert: with mutual TLS required, a client presenting
// its certificate (PARLEY_KAFKA_TLS_CERT and _KEY) is served, one without
// is refused at the handshake.
func TestSecureKafkaClientCert(t *testing.T) {
	k := StartSecureKafkaWith(t, SecureKafkaOptions{RequireClientCert: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	with := k.SCRAM(KafkaAdminUser)
	if with.CertFile == "" {
		t.Fatal("no client certificate in the settings")
	}
	cl, err := kgo.NewClient(k.Opts(with)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).ListBrokers(ctx); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	without := with
	without.CertFile, without.KeyFile = "", ""
	bare, err := kgo.NewClient(append(k.Opts(without), kgo.RetryTimeout(5*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
	defer pcancel()
	if _, err := kadm.NewClient(bare).ListBrokers(pctx); err == nil {
		t.Error("a client without a certificate was served")
	} else {
		t.Logf("without a client certificate: %v", err)
	}
}
