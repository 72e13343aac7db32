package deploy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-im/parley/schemas/deploy"
)

// TestKafkaSettings: the shared Kafka security settings, their refusals
// (PLAIN without TLS above all), and the password from a file.
func TestKafkaSettings(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := deploy.EnvFrom(map[string]string{"PARLEY_KAFKA_SASL_USERNAME": "gateway", "PARLEY_KAFKA_SASL_PASSWORD_FILE": pw})
	k := e.Kafka()
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
	if string(k.Password) != "s3cret-from-file" || k.Principal() != "User:gateway" {
		t.Errorf("password from file / principal: %q %s", k.Password, k.Principal())
	}
	if opts, err := k.Opts(); err != nil || len(opts) != 2 { // the hook and SCRAM
		t.Errorf("Opts: %d options, %v", len(opts), err)
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"PARLEY_KAFKA_SASL_MECHANISM": "PLAIN", "PARLEY_KAFKA_SASL_USERNAME": "u", "PARLEY_KAFKA_SASL_PASSWORD": "p"}, "refused without TLS"},
		{map[string]string{"PARLEY_KAFKA_SASL_MECHANISM": "GSSAPI"}, `PARLEY_KAFKA_SASL_MECHANISM="GSSAPI"`},
		{map[string]string{"PARLEY_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "PARLEY_KAFKA_SASL_USERNAME": "u"}, "needs PARLEY_KAFKA_SASL_USERNAME and PARLEY_KAFKA_SASL_PASSWORD"},
		{map[string]string{"PARLEY_KAFKA_SASL_PASSWORD": "p"}, "without PARLEY_KAFKA_SASL_USERNAME"},
		{map[string]string{"PARLEY_KAFKA_TLS_CERT": "c.pem"}, "go together"},
	} {
		e := deploy.EnvFrom(c.env)
		e.Kafka()
		err := e.Err()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.env, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "p\"") {
			t.Errorf("the error quotes the password: %v", err)
		}
	}
	// PLAIN over TLS is fine; a missing CA file is an error of Opts.
	e = deploy.EnvFrom(map[string]string{"PARLEY_KAFKA_SASL_MECHANISM": "plain", "PARLEY_KAFKA_SASL_USERNAME": "u",
		"PARLEY_KAFKA_SASL_PASSWORD": "p", "PARLEY_KAFKA_TLS_CA": filepath.Join(dir, "missing.pem")})
	e.KafkaOpts(nil)
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "TLS CA") {
		t.Errorf("missing CA: %v", err)
	}
	if (deploy.Kafka{}).Principal() != "ANONYMOUS" {
		t.Error("zero Kafka principal")
	}
}
