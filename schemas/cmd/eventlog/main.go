// Command eventlog reads Parley's topics for people: it exports the canonical
// history of a conversation or of one user's actions as evidence, and tails
// the topics live. Both print JSON lines (see schemas/README.md, "Reading the
// log"): the decoded protobuf with the partition, offset, timestamp, key and
// headers of its record.
//
//	eventlog export -conversation ID [-from-seq N] [-to-seq N] [-since T] [-until T] [-type T,…]
//	eventlog export -user ID [-since T] [-until T] [-type T,…]
//	eventlog tail [-topic events|commands] [-conversation ID] [-user ID] [-type T,…] [-from end|start|OFFSET|T] [-n N]
//
// Configuration is by environment, as for the other Parley binaries:
//
//	PARLEY_KAFKA_SEEDS   comma-separated bootstrap addresses (required)
//	PARLEY_TOPIC_PREFIX  prefix of every topic name (default none)
//	PARLEY_KAFKA_TLS_*, PARLEY_KAFKA_SASL_*  TLS and SASL, as for the other binaries
//
// Exit status: 0 when done (for tail also on Ctrl-C); 1 when reading Kafka or
// writing the output failed, or an export was interrupted — its output is
// then incomplete; 2 for a bad command line or environment.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/schemas/eventlog"
)

const usage = `usage: eventlog <command> [flags]

commands:
  export   write the events of a conversation (-conversation) or of one user's
           actions (-user) as JSON lines; progress goes to stderr
  tail     print records of the events (or commands) topic as JSON lines as they come

Run 'eventlog <command> -h' for the flags of a command.

environment:
  PARLEY_KAFKA_SEEDS   comma-separated bootstrap addresses (required)
  PARLEY_TOPIC_PREFIX  prefix of every topic name (default none)
  PARLEY_KAFKA_TLS_*, PARLEY_KAFKA_SASL_*  TLS and SASL (see the settings table)

Times (-since, -until, -from) are RFC 3339 (2026-11-29T08:00:00Z) or a
duration meaning that long ago (90m, 24h).

exit status: 0 done; 1 Kafka or output failed, or export interrupted
(its output is incomplete); 2 bad command line or environment
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is an error of the command line or environment (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var err error
	switch args[0] {
	case "export":
		err = export(ctx, args[1:], getenv, stdout, stderr)
	case "tail":
		err = tail(ctx, args[1:], getenv, stdout, stderr)
	default:
		err = usagef("unknown command %q (export or tail)", args[0])
	}
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "eventlog: %s\n", strings.TrimPrefix(line, "eventlog: "))
		}
		help := "eventlog -h"
		if args[0] == "export" || args[0] == "tail" {
			help = "eventlog " + args[0] + " -h"
		}
		fmt.Fprintf(stderr, "run '%s' for help\n", help)
		return 2
	default:
		fmt.Fprintf(stderr, "eventlog: %s\n", strings.TrimPrefix(err.Error(), "eventlog: "))
		return 1
	}
}

func export(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eventlog export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var q eventlog.ExportQuery
	var since, until, types string
	var quiet bool
	fs.StringVar(&q.Conversation, "conversation", "", "export this conversation's events (reads its partition only)")
	fs.StringVar(&q.Actor, "user", "", "export the events whose actor is this user (reads every partition)")
	fs.StringVar(&types, "type", "", "keep only these event types, comma-separated (e.g. MessageSent,MemberRemoved)")
	fs.Int64Var(&q.FromSeq, "from-seq", 0, "with -conversation: start at this timeline seq")
	fs.Int64Var(&q.ToSeq, "to-seq", 0, "with -conversation: end after this timeline seq")
	fs.StringVar(&since, "since", "", "only records with a timestamp at or after this time")
	fs.StringVar(&until, "until", "", "only records with a timestamp before this time")
	fs.BoolVar(&quiet, "quiet", false, "no progress on stderr")
	if err := parse(fs, args); err != nil {
		return err
	}
	src, err := source(getenv, eventlog.Events)
	now := time.Now()
	var errs []error
	errs = append(errs, err)
	if q.Conversation == "" && q.Actor == "" {
		errs = append(errs, usagef("export needs -conversation or -user"))
	}
	q.Types = list(types)
	if q.Since, err = parseTime(since, now); err != nil {
		errs = append(errs, usagef("-since: %v", err))
	}
	if q.Until, err = parseTime(until, now); err != nil {
		errs = append(errs, usagef("-until: %v", err))
	}
	if err := q.Validate(); err != nil {
		errs = append(errs, usagef("%v", err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	out := bufio.NewWriter(stdout)
	start := time.Now()
	lastReport := start // the first report after a second: short exports print only the summary
	if !quiet {
		q.Progress = func(p eventlog.Progress) {
			if time.Since(lastReport) >= time.Second {
				lastReport = time.Now()
				fmt.Fprintf(stderr, "eventlog: %s\n", progressLine(p, time.Since(start)))
			}
		}
	}
	p, err := eventlog.Export(ctx, src, q, func(r *eventlog.Record) error {
		line, err := r.MarshalLine()
		if err != nil {
			return err
		}
		_, err = out.Write(line)
		return err
	})
	if ferr := out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write output: %w", ferr)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("export interrupted, output incomplete: %s", progressLine(p, time.Since(start)))
		}
		return err
	}
	if !quiet {
		fmt.Fprintf(stderr, "eventlog: done: %s\n", progressLine(p, time.Since(start)))
	}
	return nil
}

func progressLine(p eventlog.Progress, took time.Duration) string {
	pct := 100.0
	if p.Total > 0 {
		pct = 100 * float64(p.Scanned) / float64(p.Total)
	}
	return fmt.Sprintf("scanned %d of %d offsets (%.0f%%) in %d partition(s), exported %d events, %s",
		p.Scanned, p.Total, pct, p.Partitions, p.Matched, took.Round(time.Millisecond))
}

func tail(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eventlog tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var q eventlog.TailQuery
	var topic, types, from string
	fs.StringVar(&topic, "topic", "events", "events or commands")
	fs.StringVar(&q.Conversation, "conversation", "", "only this conversation (reads its partition only)")
	fs.StringVar(&q.Actor, "user", "", "only records whose actor (commands: sender) is this user")
	fs.StringVar(&types, "type", "", "only these types, comma-separated (parley-type header, e.g. MessageSent)")
	fs.StringVar(&from, "from", "end", "where to start in each partition: end, start, an offset, or a time")
	fs.IntVar(&q.Limit, "n", 0, "stop after this many records (default: until Ctrl-C)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var errs []error
	kind := eventlog.Events
	switch topic {
	case "events":
	case "commands":
		kind = eventlog.Commands
	default:
		errs = append(errs, usagef("-topic must be events or commands, not %q", topic))
	}
	src, err := source(getenv, kind)
	errs = append(errs, err)
	q.Types = list(types)
	if q.From, err = parseFrom(from, time.Now()); err != nil {
		errs = append(errs, usagef("-from: %v", err))
	}
	if q.Limit < 0 {
		errs = append(errs, usagef("-n must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	out := bufio.NewWriter(stdout)
	err = eventlog.Tail(ctx, src, q, func(r *eventlog.Record) error {
		line, err := r.MarshalLine()
		if err != nil {
			return err
		}
		if _, err := out.Write(line); err != nil {
			return err
		}
		return out.Flush() // people watch it live
	})
	if ferr := out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write output: %w", ferr)
	}
	return err
}

// parse parses flags and refuses positional arguments, which are always a
// mistake here (e.g. a flag after a value with a space in it).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func source(getenv func(string) string, kind eventlog.Kind) (eventlog.Source, error) {
	topics := schemas.Prefixed(getenv("PARLEY_TOPIC_PREFIX"))
	src := eventlog.Source{Seeds: list(getenv("PARLEY_KAFKA_SEEDS")), Topic: topics.Events.Name, Kind: kind}
	if kind == eventlog.Commands {
		src.Topic = topics.Commands.Name
	}
	if len(src.Seeds) == 0 {
		return src, usagef("PARLEY_KAFKA_SEEDS is not set (comma-separated Kafka bootstrap addresses)")
	}
	e := deploy.EnvFunc(getenv)
	src.Extra = e.KafkaOpts(nil)
	if err := e.Err(); err != nil {
		return src, usagef("%v", err)
	}
	return src, nil
}

// parseTime reads RFC 3339, or a duration meaning that long before now; ""
// is the zero time (no bound).
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-29T08:00:00Z) nor a duration ago (24h)", s)
}

func parseFrom(s string, now time.Time) (eventlog.From, error) {
	switch s {
	case "end", "":
		return eventlog.FromEnd(), nil
	case "start":
		return eventlog.FromStart(), nil
	}
	if o, err := strconv.ParseInt(s, 10, 64); err == nil {
		if o < 0 {
			return eventlog.From{}, fmt.Errorf("offset %d is negative", o)
		}
		return eventlog.FromOffset(o), nil
	}
	t, err := parseTime(s, now)
	if err != nil {
		return eventlog.From{}, fmt.Errorf("%q is not end, start, an offset or a time: %v", s, err)
	}
	return eventlog.FromTime(t), nil
}

func list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
