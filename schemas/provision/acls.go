package provision

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Principals names the Kafka user of each component (least privilege: each
// its own, so that what one may do is bounded by its ACLs). A component left
// empty gets no ACLs.
type Principals struct {
	Gateway, Decider, Projector, Notifier, Webhooks, Replay string
}

// ParsePrincipals reads "component=user,…" (components: gateway, decider,
// projector, notifier, webhooks, replay), what provision's -kafka-acls takes.
func ParsePrincipals(s string) (Principals, error) {
	var p Principals
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		c, u, ok := strings.Cut(item, "=")
		u = strings.TrimPrefix(strings.TrimSpace(u), "User:")
		if !ok || u == "" {
			return p, fmt.Errorf("-kafka-acls %q: want component=user pairs such as gateway=parley-gateway,decider=parley-ingest", s)
		}
		switch strings.TrimSpace(c) {
		case "gateway":
			p.Gateway = u
		case "decider", "ingest":
			p.Decider = u
		case "projector":
			p.Projector = u
		case "notifier":
			p.Notifier = u
		case "webhooks":
			p.Webhooks = u
		case "replay":
			p.Replay = u
		default:
			return p, fmt.Errorf("-kafka-acls: unknown component %q (gateway, decider, projector, notifier, webhooks, replay)", c)
		}
	}
	return p, nil
}

// Empty reports whether no component is named.
func (p Principals) Empty() bool { return p == Principals{} }

// ACL is one grant: Principal may do Operation on the resource. READ and
// WRITE imply DESCRIBE (metadata, offsets); the idempotent producer needs
// no cluster grant beyond WRITE on a topic.
type ACL struct {
	Principal string // User:<name>
	Resource  string // topic, group, transactional-id
	Pattern   string // literal, or prefixed: every name that starts with Name
	Name      string
	Operation string // READ, WRITE, DESCRIBE
}

func (a ACL) String() string {
	return fmt.Sprintf("%s %s %s %s(%s)", a.Principal, a.Operation, a.Resource, a.Name, a.Pattern)
}

// ACLs is the least-privilege grant of each named component, for the topics
// of t (its prefix) and the groups and transactional ids the mains name by
// default (deploy.GroupName, deploy.InstanceName: prefixed patterns, so
// every instance's id matches):
//
//   - gateway: WRITE commands (its sends), repairs (view repair requests)
//     and signals; READ events (live delivery, admin export), signals and
//     bans. No group: it reads partitions directly.
//   - decider: READ commands, its changelog and bans; WRITE events, its
//     changelog, dead letters, bans, webhooks and commands (follow-ups);
//     READ its group and WRITE its transactional ids (<prefix>parley-ingest…).
//   - projector: READ events and repairs; DESCRIBE dead letters (it checks
//     the topic exists); READ its groups (<prefix>parley-projector…,
//     <prefix>parley-repair…). It writes nowhere, so a poison event is not
//     dead-lettered but stops its partition with an authorisation error
//     until an operator acts (or grants it WRITE on dead letters).
//   - notifier: READ events, signals and push; WRITE push, commands and dead
//     letters; READ its groups (<prefix>parley-notifier…).
//   - webhooks: READ events, webhooks and deliveries; WRITE deliveries and
//     dead letters; READ its groups (<prefix>parley-webhooks…).
//   - replay: READ every topic and group of the prefix (read-only: rebuild
//     and verify read the log and the groups' offsets).
func (t Topics) ACLs(p Principals) []ACL {
	set := t.TopicSet()
	pre := t.Prefix
	var out []ACL
	add := func(user, res, pattern, op string, names ...string) {
		if user == "" {
			return
		}
		for _, n := range names {
			out = append(out, ACL{Principal: "User:" + user, Resource: res, Pattern: pattern, Name: n, Operation: op})
		}
	}
	topic := func(user, op string, names ...string) { add(user, "topic", "literal", op, names...) }
	group := func(user string, names ...string) { add(user, "group", "prefixed", "READ", names...) }

	topic(p.Gateway, "WRITE", set.Commands.Name, set.Repairs.Name, set.Signals.Name)
	topic(p.Gateway, "READ", set.Events.Name, set.Signals.Name, set.Bans.Name)

	topic(p.Decider, "READ", set.Commands.Name, set.IngestState.Name, set.Bans.Name)
	topic(p.Decider, "WRITE", set.Events.Name, set.IngestState.Name, set.DeadLetters.Name, set.Bans.Name, set.Webhooks.Name, set.Commands.Name)
	group(p.Decider, pre+"parley-ingest")
	add(p.Decider, "transactional-id", "prefixed", "WRITE", pre+"parley-ingest")

	topic(p.Projector, "READ", set.Events.Name, set.Repairs.Name)
	topic(p.Projector, "DESCRIBE", set.DeadLetters.Name)
	group(p.Projector, pre+"parley-projector", pre+"parley-repair")

	topic(p.Notifier, "READ", set.Events.Name, set.Signals.Name, set.Push.Name)
	topic(p.Notifier, "WRITE", set.Push.Name, set.Commands.Name, set.DeadLetters.Name)
	group(p.Notifier, pre+"parley-notifier")

	topic(p.Webhooks, "READ", set.Events.Name, set.Webhooks.Name, set.WebhookDeliveries.Name)
	topic(p.Webhooks, "WRITE", set.WebhookDeliveries.Name, set.DeadLetters.Name)
	group(p.Webhooks, pre+"parley-webhooks")

	add(p.Replay, "topic", "prefixed", "READ", pre+"parley.")
	group(p.Replay, pre+"parley-")
	return out
}

// KafkaACLs creates the ACLs of p (Topics.ACLs) with cl, which must be
// allowed to (a super user, or ALTER on the cluster). Creating an ACL that
// exists is a no-op, so a second run changes nothing.
func KafkaACLs(ctx context.Context, cl *kgo.Client, t Topics, p Principals, r *Report) error {
	acls := t.ACLs(p)
	adm := kadm.NewClient(cl)
	var errs []error
	for _, a := range acls {
		b := kadm.NewACLs().Allow(a.Principal).AllowHosts("*")
		switch a.Resource {
		case "topic":
			b = b.Topics(a.Name)
		case "group":
			b = b.Groups(a.Name)
		case "transactional-id":
			b = b.TransactionalIDs(a.Name)
		}
		if a.Pattern == "prefixed" {
			b = b.ResourcePatternType(kadm.ACLPatternPrefixed)
		}
		ops := map[string]kadm.ACLOperation{"READ": kadm.OpRead, "WRITE": kadm.OpWrite, "DESCRIBE": kadm.OpDescribe}
		b = b.Operations(ops[a.Operation])
		res, err := adm.CreateACLs(ctx, b)
		if err == nil {
			for _, x := range res {
				if x.Err != nil {
					err = fmt.Errorf("%w %s", x.Err, x.ErrMessage)
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("provision: ACL %s: %w", a, err))
			continue
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	byPrincipal := map[string][]string{}
	for _, a := range acls {
		byPrincipal[a.Principal] = append(byPrincipal[a.Principal], fmt.Sprintf("%s %s %s", a.Operation, a.Resource, a.Name))
	}
	names := make([]string, 0, len(byPrincipal))
	for n := range byPrincipal {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r.add("acls  %-28s %s", n, strings.Join(byPrincipal[n], "; "))
	}
	return nil
}
