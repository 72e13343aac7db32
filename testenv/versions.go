package testenv

// Pinned versions of the infrastructure testenv runs. Change them here only:
// the cache directories are keyed by these values, so a change refetches
// (or rebuilds).
const (
	KafkaVersion     = "4.3.1"
	CassandraVersion = "5.0.9"
	// Kafka's Maven closure has no logging backend; without one the broker logs nothing.
	log4jVersion = "2.25.3"
	// jamm must be the javaagent Cassandra was built against.
	jammJar = "jamm-0.4.0.jar"
	// VersityGatewayVersion is the S3-compatible store: a Go module, built
	// with go install from the module proxy rather than fetched with Maven.
	VersityGatewayVersion = "v1.8.0"
	versityGatewayModule  = "github.com/versity/versitygw/cmd/versitygw"
)

// artifact is one Maven dependency of a generated fetch pom.
type artifact struct{ group, name, version string }

var (
	kafkaArtifacts = []artifact{
		{"org.apache.kafka", "kafka_2.13", KafkaVersion},
		{"org.apache.logging.log4j", "log4j-core", log4jVersion},
		{"org.apache.logging.log4j", "log4j-slf4j-impl", log4jVersion},
	}
	cassandraArtifacts = []artifact{
		{"org.apache.cassandra", "cassandra-all", CassandraVersion},
	}
)
