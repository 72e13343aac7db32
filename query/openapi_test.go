package query

import (
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-im/parley/schemas"
	"github.com/parley-im/parley/schemas/deploy"
	"github.com/parley-im/parley/testenv/openapi"
)

// TestOpenAPI checks openapi.yaml against the code: every served route is
// documented (and nothing else), every response schema has exactly the JSON
// fields of its Go type with the same required set, errors use the one
// shape, and the page limits match the constants.
func TestOpenAPI(t *testing.T) {
	doc := openapi.Load(t, "openapi.yaml")
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("openapi version %q, want 3.1.x", v)
	}
	paths := openapi.Obj(t, doc, "paths")
	components := openapi.Obj(t, doc, "components")
	defs := openapi.Obj(t, components, "schemas")

	s := &Server{cfg: Config{Registerer: prometheus.NewRegistry()}}
	var served []string
	for _, rt := range s.endpoints() {
		served = append(served, rt.pattern)
	}
	var documented []string
	for p := range paths {
		documented = append(documented, p)
	}
	sort.Strings(served)
	sort.Strings(documented)
	if !slices.Equal(served, documented) {
		t.Fatalf("served routes %v, documented %v", served, documented)
	}

	resolve := func(m map[string]any) map[string]any {
		if ref, ok := m["$ref"].(string); ok {
			parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
			var cur any = doc
			for _, p := range parts {
				cur = cur.(map[string]any)[p]
			}
			r, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("dangling $ref %s", ref)
			}
			return r
		}
		return m
	}
	for p, v := range paths {
		ops := v.(map[string]any)
		if len(ops) != 1 || ops["get"] == nil {
			t.Errorf("%s: want exactly a get operation", p)
			continue
		}
		for code, r := range openapi.Obj(t, ops["get"].(map[string]any), "responses") {
			resp := resolve(r.(map[string]any))
			if resp["description"] == nil {
				t.Errorf("%s %s: no description", p, code)
			}
			if code == "200" {
				continue
			}
			want := "Error"
			if p == "/healthz" {
				want = "Health" // the ops handler's body, 200 and 503 alike
			}
			schema := resolve(openapi.Obj(t, openapi.Obj(t, openapi.Obj(t, resp, "content"), "application/json"), "schema"))
			if !reflect.DeepEqual(schema, defs[want]) {
				t.Errorf("%s %s: not the %s shape", p, code, want)
			}
		}
	}

	// The error codes the server sends are exactly the documented enum.
	errProps := openapi.Obj(t, openapi.Obj(t, openapi.Obj(t, defs, "Error"), "properties"), "error")
	var enum []string
	for _, c := range openapi.Obj(t, openapi.Obj(t, errProps, "properties"), "code")["enum"].([]any) {
		enum = append(enum, c.(string))
	}
	codes := []string{codeUnauthenticated, codeNotMember, codeInvalidArgument, codeInvalidID, codeInvalidCursor,
		codeNotFound, codeUnavailable, codeInternal, codeUnsupported, codePermissionDenied, codeUserBanned, codeDeviceRevoked, codeDeleted, codeRateLimited}
	sort.Strings(enum)
	sort.Strings(codes)
	if !slices.Equal(enum, codes) {
		t.Errorf("documented codes %v, sent %v", enum, codes)
	}

	types := map[string]reflect.Type{
		"Error":                reflect.TypeFor[errorBody](),
		"Preview":              reflect.TypeFor[preview](),
		"InboxItem":            reflect.TypeFor[inboxItem](),
		"InboxPage":            reflect.TypeFor[inboxPage](),
		"UnreadTotals":         reflect.TypeFor[unreadTotals](),
		"Member":               reflect.TypeFor[memberItem](),
		"Conversation":         reflect.TypeFor[conversationView](),
		"MessageItem":          reflect.TypeFor[messageItem](),
		"MessagePage":          reflect.TypeFor[messagePage](),
		"Recall":               reflect.TypeFor[recallInfo](),
		"ReplyTo":              reflect.TypeFor[replyRef](),
		"Reaction":             reflect.TypeFor[reactionItem](),
		"MessageVersion":       reflect.TypeFor[messageVersion](),
		"MessageVersions":      reflect.TypeFor[messageVersions](),
		"Receipt":              reflect.TypeFor[receiptItem](),
		"Receipts":             reflect.TypeFor[receiptsView](),
		"GroupSettings":        reflect.TypeFor[groupSettings](),
		"Pin":                  reflect.TypeFor[pinItem](),
		"Pins":                 reflect.TypeFor[pinsView](),
		"Mention":              reflect.TypeFor[mentionItem](),
		"MentionPage":          reflect.TypeFor[mentionsPage](),
		"Health":               reflect.TypeFor[deploy.HealthBody](),
		"ForwardedFrom":        reflect.TypeFor[forwardRef](),
		"Replies":              reflect.TypeFor[repliesPage](),
		"Settings":             reflect.TypeFor[settingsView](),
		"SettingsConversation": reflect.TypeFor[settingsConversation](),
		"Block":                reflect.TypeFor[settingsBlock](),
		"Invite":               reflect.TypeFor[inviteItem](),
		"Invites":              reflect.TypeFor[invitesView](),
		"JoinRequest":          reflect.TypeFor[joinRequestItem](),
		"JoinRequests":         reflect.TypeFor[joinRequestsView](),
		"OwnJoinRequest":       reflect.TypeFor[ownJoinRequest](),
		"Attachment":           reflect.TypeFor[attachmentItem](),
	}
	for name := range defs {
		if types[name] == nil {
			t.Errorf("schema %s has no Go type in this test", name)
		}
	}
	for name, typ := range types {
		checkSchema(t, name, openapi.Obj(t, defs, name), typ, resolve, types)
	}

	// The documented id pattern accepts exactly what the edge accepts.
	idSchema := openapi.Obj(t, resolve(openapi.Obj(t, openapi.Obj(t, components, "parameters"), "ConversationID")), "schema")
	pattern := regexp.MustCompile(idSchema["pattern"].(string))
	for _, id := range []string{schemas.NewGroupConversationID(), schemas.DirectConversationID("a", "b"), gid("x"),
		"g:1", "g:" + strings.Repeat("A", 32), "x:" + strings.Repeat("0", 32), "g:" + strings.Repeat("0", 33), ""} {
		if pattern.MatchString(id) != (schemas.CheckConversationID("id", id) == nil) {
			t.Errorf("id %q: documented pattern and CheckConversationID disagree", id)
		}
	}

	// Page limits.
	param := func(path, name string) map[string]any {
		for _, p := range openapi.Obj(t, paths, path)["get"].(map[string]any)["parameters"].([]any) {
			p := resolve(p.(map[string]any))
			if p["name"] == name {
				return openapi.Obj(t, p, "schema")
			}
		}
		t.Fatalf("%s: no parameter %s", path, name)
		return nil
	}
	for path, def := range map[string]int{"/v1/inbox": DefaultInboxPageSize, "/v1/conversations/{id}/messages": HardMaxPageSize,
		"/v1/conversations/{id}/mentions": DefaultInboxPageSize, "/v1/conversations/{id}/messages/{seq}/replies": DefaultInboxPageSize} {
		l := param(path, "limit")
		if l["maximum"] != HardMaxPageSize || l["default"] != def || l["minimum"] != 1 {
			t.Errorf("%s limit %v, want 1..%d default %d", path, l, HardMaxPageSize, def)
		}
	}

	// A message seq of a path: what messageSeqParam accepts.
	seq := param("/v1/conversations/{id}/messages/{seq}/versions", "seq")
	if seq["type"] != "integer" || seq["minimum"] != 1 || seq["maximum"] != math.MaxInt64 {
		t.Errorf("versions seq %v, want an integer 1..2^63-1", seq)
	}
	// The snippet's documented bound is the one reply_to cuts at.
	if l := openapi.Obj(t, openapi.Obj(t, openapi.Obj(t, defs, "ReplyTo"), "properties"), "snippet")["maxLength"]; l != snippetRunes {
		t.Errorf("ReplyTo.snippet maxLength %v, snippetRunes %d", l, snippetRunes)
	}
}

// checkSchema compares an object schema with the JSON encoding of typ. A
// property that is a $ref (or an array whose items are one) must name the
// schema of its Go type in types; an inline object is compared in turn.
func checkSchema(t *testing.T, name string, schema map[string]any, typ reflect.Type, resolve func(map[string]any) map[string]any, types map[string]reflect.Type) {
	t.Helper()
	props := openapi.Obj(t, schema, "properties")
	var required []string
	for _, r := range schema["required"].([]any) {
		required = append(required, r.(string))
	}
	var fields, wantRequired []string
	for f := range typ.Fields() {
		tag := f.Tag.Get("json")
		key, opts, _ := strings.Cut(tag, ",")
		fields = append(fields, key)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			wantRequired = append(wantRequired, key)
		}
		p, ok := props[key].(map[string]any)
		if !ok {
			t.Errorf("%s: field %s undocumented", name, key)
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		want := map[reflect.Kind]string{reflect.String: "string", reflect.Int: "integer", reflect.Int64: "integer",
			reflect.Bool: "boolean", reflect.Slice: "array", reflect.Struct: "object", reflect.Map: "object"}[ft.Kind()]
		if ft == reflect.TypeFor[time.Time]() {
			want = "string"
			if p["format"] != "date-time" {
				t.Errorf("%s.%s: want format date-time", name, key)
			}
		}
		got, _ := resolve(p)["type"].(string)
		if got != want {
			t.Errorf("%s.%s: documented type %q, Go encodes %q", name, key, got, want)
		}
		checkNested := func(where string, p map[string]any, ft reflect.Type) {
			if ft.Kind() != reflect.Struct || ft == reflect.TypeFor[time.Time]() {
				return
			}
			if ref, ok := p["$ref"].(string); ok {
				target := ref[strings.LastIndex(ref, "/")+1:]
				if types[target] != ft {
					t.Errorf("%s: refers to %s, Go encodes a %v", where, target, ft)
				}
				return
			}
			checkSchema(t, where, p, ft, resolve, types) // inline object
		}
		checkNested(name+"."+key, p, ft)
		if ft.Kind() == reflect.Slice {
			items, ok := p["items"].(map[string]any)
			if !ok {
				t.Errorf("%s.%s: an array without items", name, key)
				continue
			}
			et := ft.Elem()
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			checkNested(name+"."+key+"[]", items, et)
		}
	}
	sort.Strings(fields)
	sort.Strings(required)
	sort.Strings(wantRequired)
	var documented []string
	for k := range props {
		documented = append(documented, k)
	}
	sort.Strings(documented)
	if !slices.Equal(fields, documented) {
		t.Errorf("%s: documented properties %v, Go fields %v", name, documented, fields)
	}
	if !slices.Equal(required, wantRequired) {
		t.Errorf("%s: documented required %v, always encoded %v", name, required, wantRequired)
	}
	if schema["additionalProperties"] != false {
		t.Errorf("%s: want additionalProperties: false", name)
	}
}

// conforms checks a response body against the schema name of
// openapi.yaml. TestOpenAPI compares the spec with the Go types; this
// compares it with what the server actually sent.
func conforms(t *testing.T, name string, body []byte) {
	t.Helper()
	openapi.Conforms(t, "openapi.yaml", name, body)
}
