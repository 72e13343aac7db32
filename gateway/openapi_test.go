package gateway

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-im/parley/schemas/deploy"
	pb "github.com/parley-im/parley/schemas/parleyv1"
	"github.com/parley-im/parley/testenv/openapi"
)

// sentError is one (HTTP status, error code) an HTTP handler can answer.
type sentError struct {
	status int
	code   string
}

// dynamicRefusals are the HTTP refusals, by the function that makes them,
// whose status or code is not a constant at the call: what each can send.
var dynamicRefusals = map[string][]sentError{
	// Passes on an httpError, made by a refuse call seen on its own.
	"fail": nil,
	// The decider's refusals of an UploadAttachment (ingest: the
	// membership check, then uploadAttachment), with record's statuses.
	"record": {{http.StatusForbidden, "ERROR_CODE_NOT_MEMBER"}, {http.StatusBadRequest, "ERROR_CODE_INVALID_ARGUMENT"},
		{http.StatusConflict, "ERROR_CODE_LIMIT_REACHED"}, {http.StatusConflict, "ERROR_CODE_CONVERSATION_CLOSED"},
		{http.StatusConflict, "ERROR_CODE_CONVERSATION_DELETED"}},
	// The WebSocket upgrader's refusal of a request that is no handshake.
	"New": {{http.StatusBadRequest, "ERROR_CODE_INVALID_ARGUMENT"}},
	// An IDError of the dev issuer.
	"devToken": {{http.StatusBadRequest, "ERROR_CODE_INVALID_ID"}},
	// pushTargets.refuse passes on what its callers name, and its
	// authenticate an httpError of authenticateDevice.
	"refuse": nil, "authenticate": nil,
	// A push body's refusal by checkPush or pushCommand, with pushStatus.
	"refusal": {{http.StatusBadRequest, "ERROR_CODE_INVALID_ARGUMENT"}, {http.StatusBadRequest, "ERROR_CODE_INVALID_ID"},
		{http.StatusForbidden, "ERROR_CODE_PERMISSION_DENIED"}},
	// The decider's refusals of the admin API's commands (create, add
	// members, send, ban, close, reopen, delete), with adminStatus.
	"decision": {{http.StatusBadRequest, "ERROR_CODE_INVALID_ARGUMENT"}, {http.StatusBadRequest, "ERROR_CODE_INVALID_ID"},
		{http.StatusForbidden, "ERROR_CODE_NOT_MEMBER"}, {http.StatusForbidden, "ERROR_CODE_PERMISSION_DENIED"},
		{http.StatusForbidden, "ERROR_CODE_USER_BANNED"}, {http.StatusForbidden, "ERROR_CODE_BLOCKED"},
		{http.StatusForbidden, "ERROR_CODE_MUTED"}, {http.StatusConflict, "ERROR_CODE_CONVERSATION_EXISTS"},
		{http.StatusConflict, "ERROR_CODE_GROUP_FULL"}, {http.StatusConflict, "ERROR_CODE_WEBHOOK_EXISTS"},
		{http.StatusConflict, "ERROR_CODE_LIMIT_REACHED"}, {http.StatusRequestEntityTooLarge, "ERROR_CODE_MESSAGE_TOO_LARGE"},
		{http.StatusNotFound, "ERROR_CODE_NOT_FOUND"}, {http.StatusUnprocessableEntity, "ERROR_CODE_UNSUPPORTED"},
		{http.StatusNotFound, "ERROR_CODE_CONVERSATION_DELETED"}, {http.StatusConflict, "ERROR_CODE_CONVERSATION_CLOSED"}},
	// The decider's refusals of a push command (ingest/push.go), with
	// pushStatus.
	"decide": {{http.StatusBadRequest, "ERROR_CODE_INVALID_ARGUMENT"}, {http.StatusForbidden, "ERROR_CODE_PERMISSION_DENIED"},
		{http.StatusConflict, "ERROR_CODE_LIMIT_REACHED"}},
}

// statuses are the net/http constants a refusal may name.
var statuses = map[string]int{
	"StatusBadRequest": 400, "StatusUnauthorized": 401, "StatusForbidden": 403, "StatusNotFound": 404,
	"StatusConflict": 409, "StatusRequestEntityTooLarge": 413, "StatusUnsupportedMediaType": 415,
	"StatusUnprocessableEntity": 422, "StatusTooManyRequests": 429, "StatusInternalServerError": 500,
	"StatusBadGateway": 502, "StatusServiceUnavailable": 503, "StatusGatewayTimeout": 504,
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// TestOpenAPI checks openapi.yaml against the code: the routes the
// gateway registers (attachments and dev tokens on) are exactly the
// documented operations; with attachments off the same operations answer
// 503; the HTTP error codes and statuses documented are exactly those the
// handlers send; the attachment schemas are the proto JSON of
// parley.v1.Attachment; and the other bodies match their Go types.
func TestOpenAPI(t *testing.T) {
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := openapi.Load(t, "openapi.yaml")
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("openapi version %q, want 3.1.x", v)
	}
	resolve := func(m map[string]any) map[string]any {
		t.Helper()
		for range 8 { // a $ref may name another $ref
			ref, ok := m["$ref"].(string)
			if !ok {
				return m
			}
			var cur any = doc
			for _, p := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
				c, _ := cur.(map[string]any)
				cur = c[p]
			}
			if m, ok = cur.(map[string]any); !ok {
				t.Fatalf("dangling $ref %s", ref)
			}
		}
		t.Fatal("a $ref chain too long")
		return nil
	}
	paths := openapi.Obj(t, doc, "paths")
	defs := openapi.Obj(t, openapi.Obj(t, doc, "components"), "schemas")

	// Routes: the documented operations are the registered patterns.
	type operation struct {
		method, path string
		op           map[string]any
	}
	var ops []operation
	var documented []string
	for p, v := range paths {
		for m, op := range v.(map[string]any) {
			if !slices.Contains(httpMethods, m) {
				continue
			}
			ops = append(ops, operation{strings.ToUpper(m), p, op.(map[string]any)})
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	on := testRoutes(t, true, true)
	var served []string
	for _, p := range on.patterns {
		served = append(served, strings.TrimSuffix(p, "{$}")) // "GET /{$}" is the path "/" alone
	}
	sort.Strings(served)
	sort.Strings(documented)
	for _, p := range served {
		if !slices.Contains(documented, p) {
			t.Errorf("route %s is registered, not documented", p)
		}
	}
	for _, p := range documented {
		if !slices.Contains(served, p) {
			t.Errorf("route %s is documented, not registered", p)
		}
	}
	off := testRoutes(t, false, false)
	wildcard := regexp.MustCompile(`\{[^}]*\}`)
	for _, o := range ops {
		target := wildcard.ReplaceAllString(o.path, "x")
		if _, pattern := on.mux.Handler(httptest.NewRequest(o.method, target, nil)); strings.TrimSuffix(pattern, "{$}") != o.method+" "+o.path {
			t.Errorf("%s %s: a request to %s is routed to %q", o.method, o.path, target, pattern)
		}
		tags, _ := o.op["tags"].([]any)
		if !slices.Contains(tags, any("attachments")) && !slices.Contains(tags, any("uploads")) {
			continue
		}
		// Without a blob store the same request answers 503 UNAVAILABLE.
		rec := httptest.NewRecorder()
		off.mux.ServeHTTP(rec, httptest.NewRequest(o.method, target, nil))
		var e struct{ Code string }
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code != http.StatusServiceUnavailable || e.Code != "ERROR_CODE_UNAVAILABLE" {
			t.Errorf("%s %s without attachments: %d %s, want 503 UNAVAILABLE", o.method, o.path, rec.Code, rec.Body)
		}
		if openapi.Obj(t, o.op, "responses")["503"] == nil {
			t.Errorf("%s %s: 503 undocumented", o.method, o.path)
		}
	}
	rec := httptest.NewRecorder()
	off.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/dev/token?user=a&device=b", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("/v1/dev/token without DevTokens: %d, want 404", rec.Code)
	}

	// Responses: described; errors in the one shape, with an example per
	// code, each code documented under the statuses it is sent with.
	errorSchema := defs["Error"]
	documentedErrors := map[sentError]bool{}
	for _, o := range ops {
		where := o.method + " " + o.path
		for status, r := range openapi.Obj(t, o.op, "responses") {
			resp := resolve(r.(map[string]any))
			if d, _ := resp["description"].(string); d == "" {
				t.Errorf("%s %s: no description", where, status)
			}
			code, err := strconv.Atoi(status)
			if err != nil {
				t.Errorf("%s: response %q is not a status", where, status)
				continue
			}
			content, _ := resp["content"].(map[string]any)
			js, _ := content["application/json"].(map[string]any)
			if js == nil {
				continue
			}
			isError := reflect.DeepEqual(resolve(openapi.Obj(t, js, "schema")), errorSchema)
			if isError != (code >= 400 && o.path != "/healthz") {
				t.Errorf("%s %s: the Error shape is for the error statuses (the Health body excepted)", where, status)
			}
			if !isError {
				continue
			}
			examples, _ := js["examples"].(map[string]any)
			if len(examples) == 0 {
				t.Errorf("%s %s: an error without examples of its codes", where, status)
			}
			for name, ex := range examples {
				v, _ := resolve(ex.(map[string]any))["value"].(map[string]any)
				c, _ := v["code"].(string)
				if "ERROR_CODE_"+name != c {
					t.Errorf("%s %s: example %s has code %q", where, status, name, c)
				}
				for _, e := range openapi.Errors(defs, errorSchema.(map[string]any), v, where+" "+status+" "+name) {
					t.Error(e)
				}
				documentedErrors[sentError{code, c}] = true
			}
		}
	}
	sent := sentErrors(t)
	for e := range sent {
		if !documentedErrors[e] {
			t.Errorf("the handlers send %d %s; openapi.yaml documents it nowhere", e.status, e.code)
		}
	}
	for e := range documentedErrors {
		if !sent[e] {
			t.Errorf("openapi.yaml documents %d %s; no handler sends it", e.status, e.code)
		}
	}
	var enum, codes []string
	for _, c := range openapi.Obj(t, openapi.Obj(t, openapi.Obj(t, defs, "Error"), "properties"), "code")["enum"].([]any) {
		enum = append(enum, c.(string))
		if _, ok := pb.ErrorCode_value[c.(string)]; !ok {
			t.Errorf("documented code %v is no parley.v1.ErrorCode", c)
		}
	}
	for e := range documentedErrors {
		if !slices.Contains(codes, e.code) {
			codes = append(codes, e.code)
		}
	}
	sort.Strings(enum)
	sort.Strings(codes)
	if !slices.Equal(enum, codes) {
		t.Errorf("Error.code enum %v, the codes of the documented errors %v", enum, codes)
	}
	checkProtoJSONFields(t, "Error", openapi.Obj(t, defs, "Error"), (&pb.Error{}).ProtoReflect().Descriptor())

	// The attachment bodies are proto JSON of their messages: the upload's
	// answer, and through it Attachment and the messages it holds.
	checked := map[string]bool{"Error": true, "TusError": true}
	checkProtoSchema(t, "UploadAttachment", openapi.Obj(t, defs, "UploadAttachment"),
		(&pb.UploadAttachment{}).ProtoReflect().Descriptor(), resolve, checked)
	// The push bodies, likewise.
	for name, m := range map[string]proto.Message{"RegisterPushTarget": &pb.RegisterPushTarget{},
		"PushTargetRegistered": &pb.PushTargetRegistered{}, "PushTargetUnregistered": &pb.PushTargetUnregistered{}, "Accepted": &pb.Accepted{}} {
		checkProtoSchema(t, name, openapi.Obj(t, defs, name), m.ProtoReflect().Descriptor(), resolve, checked)
	}
	// The JSON bodies of Go types.
	for name, typ := range map[string]reflect.Type{
		"SignedURL":           reflect.TypeFor[urlAnswer](),
		"DevToken":            reflect.TypeFor[devTokenResponse](),
		"Health":              reflect.TypeFor[deploy.HealthBody](),
		"AdminResult":         reflect.TypeFor[adminResult](),
		"AdminCreate":         reflect.TypeFor[adminCreate](),
		"AdminAddMembers":     reflect.TypeFor[adminAddMembers](),
		"AdminSend":           reflect.TypeFor[adminSend](),
		"AdminRole":           reflect.TypeFor[adminRole](),
		"AdminBan":            reflect.TypeFor[adminBan](),
		"AdminRevoke":         reflect.TypeFor[adminRevoke](),
		"AdminClose":          reflect.TypeFor[adminClose](),
		"AdminConversations":  reflect.TypeFor[adminConversations](),
		"AdminConversation":   reflect.TypeFor[adminConversation](),
		"AdminWebhook":        reflect.TypeFor[adminWebhook](),
		"AdminWebhookCreated": reflect.TypeFor[adminWebhookCreated](),
		"AdminWebhooks":       reflect.TypeFor[adminWebhooks](),
		"AdminWebhookRow":     reflect.TypeFor[adminWebhookRow](),
	} {
		checkGoSchema(t, name, openapi.Obj(t, defs, name), typ)
		checked[name] = true
	}
	for name := range defs {
		if !checked[name] {
			t.Errorf("schema %s is compared with nothing in this test", name)
		}
	}

	// A signed URL's query is the documented parameters and signature.
	u, err := url.Parse(SignedAttachmentPath(make([]byte, 32), "g:"+strings.Repeat("0", 32), strings.Repeat("a", 32), variantFile, "alice", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if _, pattern := on.mux.Handler(httptest.NewRequest(http.MethodGet, u.String(), nil)); pattern != "GET /v1/files/{conversation}/{attachment}/{variant}" {
		t.Errorf("a signed path is routed to %q", pattern)
	}
	files := openapi.Obj(t, openapi.Obj(t, paths, "/v1/files/{conversation}/{attachment}/{variant}"), "get")
	var query, signed []string
	for _, p := range files["parameters"].([]any) {
		if p := resolve(p.(map[string]any)); p["in"] == "query" {
			query = append(query, p["name"].(string))
		}
	}
	for _, req := range files["security"].([]any) {
		for scheme := range req.(map[string]any) {
			s := openapi.Obj(t, openapi.Obj(t, openapi.Obj(t, doc, "components"), "securitySchemes"), scheme)
			if s["in"] == "query" {
				query = append(query, s["name"].(string))
			}
		}
	}
	for k := range u.Query() {
		signed = append(signed, k)
	}
	sort.Strings(query)
	sort.Strings(signed)
	if !slices.Equal(query, signed) {
		t.Errorf("signed URL query %v, documented %v", signed, query)
	}

	// The document served is this file.
	rec = httptest.NewRecorder()
	on.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/openapi.yaml", nil))
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), raw) || rec.Header().Get("Content-Type") != "application/yaml" {
		t.Errorf("GET /v1/openapi.yaml: %d %q, not this file", rec.Code, rec.Header().Get("Content-Type"))
	}
}

// testRoutes registers the routes of a gateway that is never started.
func testRoutes(t *testing.T, attachments, dev bool) *router {
	t.Helper()
	s := &Server{cfg: Config{DevTokens: dev}, log: slog.New(slog.DiscardHandler), gatherer: prometheus.NewRegistry()}
	if attachments {
		a, err := newAttachments(s, Attachments{StagingDir: t.TempDir()}.Defaults(), nil)
		if err != nil {
			t.Fatal(err)
		}
		s.att = a
	}
	return s.routes()
}

// sentErrors reads the package's sources for the HTTP refusals: every
// call of refuse(status, code, …) and writeError(w, status, code, …), with
// dynamicRefusals for those not made of constants.
func sentErrors(t *testing.T) map[sentError]bool {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	sent := map[sentError]bool{}
	used := map[string]bool{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				var name string
				switch f := call.Fun.(type) {
				case *ast.Ident:
					name = f.Name
				case *ast.SelectorExpr: // a method: p.refuse
					name = f.Sel.Name
				}
				if name != "refuse" && name != "writeError" {
					return true
				}
				args := call.Args
				if _, method := call.Fun.(*ast.SelectorExpr); name == "writeError" || method { // (w, status, code, …)
					args = args[1:]
				}
				status, okStatus := statusOf(args[0])
				if sel, ok := args[0].(*ast.SelectorExpr); ok && !okStatus && isIdent(sel.X, "http") {
					t.Errorf("%s: status %s: add it to statuses", fset.Position(call.Pos()), sel.Sel.Name)
				}
				code, okCode := codeOf(args[1])
				if okStatus && okCode {
					if _, known := pb.ErrorCode_value[code]; !known {
						t.Errorf("%s: %s is no ErrorCode", fset.Position(call.Pos()), code)
					}
					sent[sentError{status, code}] = true
					return true
				}
				pairs, listed := dynamicRefusals[fn.Name.Name]
				if !listed {
					t.Errorf("%s: a refusal in %s whose status or code is not a constant: list what it sends in dynamicRefusals",
						fset.Position(call.Pos()), fn.Name.Name)
				}
				used[fn.Name.Name] = true
				for _, p := range pairs {
					sent[p] = true
				}
				return true
			})
		}
	}
	for fn := range dynamicRefusals {
		if !used[fn] {
			t.Errorf("dynamicRefusals lists %s, which makes no such refusal", fn)
		}
	}
	return sent
}

func statusOf(e ast.Expr) (int, bool) {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return 0, false
	}
	if !isIdent(sel.X, "http") {
		return 0, false
	}
	s, ok := statuses[sel.Sel.Name]
	return s, ok // an unknown one: add it to statuses
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

func codeOf(e ast.Expr) (string, bool) {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return "", false
	}
	if !isIdent(sel.X, "pb") {
		return "", false
	}
	return strings.CutPrefix(sel.Sel.Name, "ErrorCode_")
}

// checkProtoJSONFields checks that every property of schema is the proto
// JSON name of a field of md.
func checkProtoJSONFields(t *testing.T, name string, schema map[string]any, md protoreflect.MessageDescriptor) {
	t.Helper()
	for p := range openapi.Obj(t, schema, "properties") {
		if md.Fields().ByJSONName(p) == nil {
			t.Errorf("%s.%s: no field of %s", name, p, md.FullName())
		}
	}
}

// checkProtoSchema compares an object schema with the proto JSON of md:
// one property per field, named by its JSON name, of the type protojson
// encodes it as; a message field is a $ref to the schema of its message's
// name, compared in turn (a Timestamp is a date-time string).
func checkProtoSchema(t *testing.T, name string, schema map[string]any, md protoreflect.MessageDescriptor,
	resolve func(map[string]any) map[string]any, checked map[string]bool) {
	t.Helper()
	if checked[name] {
		return
	}
	checked[name] = true
	props := openapi.Obj(t, schema, "properties")
	var fields, documented []string
	for i := range md.Fields().Len() {
		f := md.Fields().Get(i)
		key := f.JSONName()
		fields = append(fields, key)
		p, ok := props[key].(map[string]any)
		if !ok {
			continue // reported below
		}
		where := name + "." + key
		if f.Cardinality() == protoreflect.Repeated {
			t.Errorf("%s: a repeated field; teach this test arrays", where)
			continue
		}
		want, format := "", ""
		switch f.Kind() {
		case protoreflect.BoolKind:
			want = "boolean"
		case protoreflect.StringKind, protoreflect.EnumKind:
			want = "string"
		case protoreflect.BytesKind:
			want = "string"
			if p["contentEncoding"] != "base64" {
				t.Errorf("%s: bytes, want contentEncoding base64", where)
			}
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
			protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			want, format = "integer", "int32"
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
			protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			want, format = "string", "int64" // protojson writes 64-bit integers as strings
		case protoreflect.MessageKind:
			if f.Message().FullName() == "google.protobuf.Timestamp" {
				want, format = "string", "date-time"
				break
			}
			ref, _ := p["$ref"].(string)
			if ref != "#/components/schemas/"+string(f.Message().Name()) {
				t.Errorf("%s: a %s, want a $ref to its schema, got %q", where, f.Message().FullName(), ref)
				continue
			}
			checkProtoSchema(t, string(f.Message().Name()), resolve(p), f.Message(), resolve, checked)
			continue
		default:
			t.Errorf("%s: kind %v; teach this test", where, f.Kind())
			continue
		}
		if p["type"] != want {
			t.Errorf("%s: documented type %v, protojson writes a %s", where, p["type"], want)
		}
		if format != "" && p["format"] != format {
			t.Errorf("%s: documented format %v, want %s", where, p["format"], format)
		}
		if f.Kind() == protoreflect.EnumKind {
			var names, enum []string
			for j := range f.Enum().Values().Len() {
				if v := f.Enum().Values().Get(j); v.Number() != 0 { // the zero value is left out
					names = append(names, string(v.Name()))
				}
			}
			for _, v := range openapi.AsSlice(p["enum"]) {
				enum = append(enum, v.(string))
			}
			sort.Strings(names)
			sort.Strings(enum)
			if !slices.Equal(names, enum) {
				t.Errorf("%s: documented enum %v, %s has %v", where, enum, f.Enum().FullName(), names)
			}
		}
	}
	for k := range props {
		documented = append(documented, k)
	}
	sort.Strings(fields)
	sort.Strings(documented)
	if !slices.Equal(fields, documented) {
		t.Errorf("%s: documented properties %v, %s's JSON names %v", name, documented, md.FullName(), fields)
	}
	for _, r := range openapi.AsSlice(schema["required"]) {
		if !slices.Contains(fields, r.(string)) {
			t.Errorf("%s: required %v is no field", name, r)
		}
	}
	if schema["additionalProperties"] != false {
		t.Errorf("%s: want additionalProperties: false", name)
	}
}

// checkGoSchema compares an object schema with the encoding/json encoding
// of typ: its properties, their types, and the required ones (those
// without omitempty).
func checkGoSchema(t *testing.T, name string, schema map[string]any, typ reflect.Type) {
	t.Helper()
	props := openapi.Obj(t, schema, "properties")
	var fields, required, wantRequired, documented []string
	for f := range typ.Fields() {
		key, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		fields = append(fields, key)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			wantRequired = append(wantRequired, key)
		}
		p, ok := props[key].(map[string]any)
		if !ok {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		want := map[reflect.Kind]string{reflect.String: "string", reflect.Map: "object", reflect.Bool: "boolean",
			reflect.Int: "integer", reflect.Int64: "integer", reflect.Slice: "array"}[ft.Kind()]
		if ft == reflect.TypeFor[time.Time]() {
			want = "string"
			if p["format"] != "date-time" {
				t.Errorf("%s.%s: want format date-time", name, key)
			}
		}
		if p["type"] != want {
			t.Errorf("%s.%s: documented type %v, Go encodes %q", name, key, p["type"], want)
		}
	}
	for k := range props {
		documented = append(documented, k)
	}
	for _, r := range openapi.AsSlice(schema["required"]) {
		required = append(required, r.(string))
	}
	for _, s := range [][]string{fields, documented, required, wantRequired} {
		sort.Strings(s)
	}
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
