// Package openapi holds what the OpenAPI tests of gateway and query share:
// loading a document, walking it, and checking a decoded JSON value
// against one of its schemas.
package openapi

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Load reads and decodes the OpenAPI document at path.
func Load(t testing.TB, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

// Obj is m[key] as an object; anything else fails the test.
func Obj(t testing.TB, m map[string]any, key string) map[string]any {
	t.Helper()
	v, ok := m[key].(map[string]any)
	if !ok {
		t.Fatalf("openapi: %q is not an object", key)
	}
	return v
}

// AsSlice is v as a list (nil when it is none).
func AsSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// Conforms checks body, a response, against the schema name of the
// document at path, reporting each difference.
func Conforms(t testing.TB, path, name string, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v in %s", name, err, body)
	}
	defs := Obj(t, Obj(t, Load(t, path), "components"), "schemas")
	for _, e := range Errors(defs, Obj(t, defs, name), v, name) {
		t.Errorf("response %s", e)
	}
}

// Errors checks a decoded JSON value against schema (defs resolves its
// $refs): every value has its documented type (and format, enum, minimum,
// maxLength), objects have their required properties and no undocumented
// ones. where names the value in the messages.
func Errors(defs, schema map[string]any, v any, where string) []string {
	if ref, ok := schema["$ref"].(string); ok {
		target, _ := defs[ref[strings.LastIndex(ref, "/")+1:]].(map[string]any)
		if target == nil {
			return []string{where + ": dangling " + ref}
		}
		schema = target
	}
	bad := func(format string, args ...any) []string {
		return []string{where + ": " + fmt.Sprintf(format, args...)}
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, v) {
		return bad("%v not in %v", v, enum)
	}
	var errs []string
	switch schema["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return bad("%v is not an object", v)
		}
		for _, r := range AsSlice(schema["required"]) {
			if _, ok := m[r.(string)]; !ok {
				errs = append(errs, where+": required "+r.(string)+" missing")
			}
		}
		props, _ := schema["properties"].(map[string]any)
		for k, pv := range m {
			p, ok := props[k].(map[string]any)
			if !ok {
				if extra, ok := schema["additionalProperties"].(map[string]any); ok {
					errs = append(errs, Errors(defs, extra, pv, where+"."+k)...)
				} else if schema["additionalProperties"] == false {
					errs = append(errs, where+": undocumented property "+k)
				}
				continue
			}
			errs = append(errs, Errors(defs, p, pv, where+"."+k)...)
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return bad("%v is not an array", v)
		}
		items, _ := schema["items"].(map[string]any)
		for i, e := range a {
			errs = append(errs, Errors(defs, items, e, fmt.Sprintf("%s[%d]", where, i))...)
		}
	case "string":
		s, ok := v.(string)
		if !ok {
			return bad("%v is not a string", v)
		}
		if schema["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				return bad("%q is not a date-time", s)
			}
		}
		if n, ok := schema["maxLength"].(int); ok && utf8.RuneCountInString(s) > n {
			return bad("%d characters, maxLength %d", utf8.RuneCountInString(s), n)
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) {
			return bad("%v is not an integer", v)
		}
		if n, ok := schema["minimum"].(int); ok && f < float64(n) {
			return bad("%v below minimum %d", v, n)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return bad("%v is not a boolean", v)
		}
	}
	return errs
}
