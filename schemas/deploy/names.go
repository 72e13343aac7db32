package deploy

import (
	"os"
	"strings"
)

// GroupName is the consumer group of a component within a deployment:
// prefix + "parley-" + component. The prefix is PARLEY_TOPIC_PREFIX, so two
// deployments sharing a Kafka cluster never share a group (or fence each
// other's transactions).
func GroupName(prefix, component string) string {
	return prefix + "parley-" + component
}

// InstanceName is GroupName followed by "-" and instance: the transactional
// id of a decider, or the static group member id of a process. Both must be
// unique per running process and stable across its restarts.
func InstanceName(prefix, component, instance string) string {
	return GroupName(prefix, component) + "-" + instance
}

// Hostname is the host's name, or "localhost" when it has none: the default
// instance of a process (one instance of each component per host).
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || strings.TrimSpace(h) == "" {
		return "localhost"
	}
	return h
}
