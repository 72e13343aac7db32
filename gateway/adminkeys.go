package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/parley-im/parley/schemas"
)

// The admin API's service credentials (README.md, "Admin API"): API keys
// the deployer configures, each with scopes and the users it may act as.
// A key is presented as "Authorization: Bearer <key id>.<secret>"; the
// gateway keeps only the SHA-256 of each secret and compares in constant
// time. Secrets are never logged.

// The admin API's scopes.
const (
	ScopeMessagesWrite      = "messages:write"      // send as a user the key acts as
	ScopeConversationsWrite = "conversations:write" // create conversations, add members
	ScopeConversationsRead  = "conversations:read"  // list a user's conversations
	ScopeUsersBan           = "users:ban"           // ban and unban users
	ScopeExport             = "export"              // export a conversation's events
	ScopeWebhooksWrite      = "webhooks:write"      // create, list and delete the webhooks of a user the key acts as
)

// Scopes lists every scope a key may hold.
var Scopes = []string{ScopeMessagesWrite, ScopeConversationsWrite, ScopeConversationsRead, ScopeUsersBan, ScopeExport, ScopeWebhooksWrite}

// AnyUser in a key's ActAs lets it act as every user.
const AnyUser = "*"

// AdminKey is one service credential.
type AdminKey struct {
	// ID names the key (schemas.CheckID's form, without '.'): it is the
	// service principal recorded on every command the key appends.
	ID string `json:"id"`
	// SHA256 is the lowercase hex SHA-256 of the secret.
	SHA256 string `json:"sha256"`
	// Scopes the key holds (Scopes).
	Scopes []string `json:"scopes"`
	// ActAs are the users (bots, system users) the key may act as when a
	// call names one: a send's sender, a conversation's creator or adder.
	// AnyUser ("*") allows every user.
	ActAs []string `json:"actAs"`
}

// AdminKeys is the key file's content: {"keys": [AdminKey, ...]}.
type AdminKeys struct {
	Keys []AdminKey `json:"keys"`
}

// LoadAdminKeys reads and checks a key file.
func LoadAdminKeys(path string) (AdminKeys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return AdminKeys{}, fmt.Errorf("admin keys: %w", err)
	}
	var k AdminKeys
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&k); err != nil {
		return AdminKeys{}, fmt.Errorf("admin keys %s: %w", path, err)
	}
	return k, k.Validate()
}

// Validate reports every malformed key at once.
func (k AdminKeys) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, key := range k.Keys {
		where := fmt.Sprintf("admin key %d (%s)", i, schemas.Clip(key.ID))
		if err := schemas.CheckID("id", key.ID); err != nil || strings.Contains(key.ID, ".") {
			errs = append(errs, fmt.Errorf("%s: id must be 1-128 bytes without spaces, control characters or '.'", where))
		}
		if seen[key.ID] {
			errs = append(errs, fmt.Errorf("%s: id listed twice", where))
		}
		seen[key.ID] = true
		if h, err := hex.DecodeString(key.SHA256); err != nil || len(h) != sha256.Size || strings.ToLower(key.SHA256) != key.SHA256 {
			errs = append(errs, fmt.Errorf("%s: sha256 must be 64 lowercase hex digits (the SHA-256 of the secret)", where))
		}
		if len(key.Scopes) == 0 {
			errs = append(errs, fmt.Errorf("%s: no scopes", where))
		}
		for _, s := range key.Scopes {
			if !slices.Contains(Scopes, s) {
				errs = append(errs, fmt.Errorf("%s: unknown scope %q (known: %s)", where, s, strings.Join(Scopes, " ")))
			}
		}
		for _, u := range key.ActAs {
			if u != AnyUser && schemas.CheckID("actAs", u) != nil {
				errs = append(errs, fmt.Errorf("%s: actAs %q is no user id", where, schemas.Clip(u)))
			}
		}
	}
	return errors.Join(errs...)
}

// HashAdminSecret is what a key file holds for secret.
func HashAdminSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// principal is an authenticated service credential.
type principal struct{ key *AdminKey }

func (p principal) has(scope string) bool { return slices.Contains(p.key.Scopes, scope) }

func (p principal) mayActAs(user string) bool {
	return slices.Contains(p.key.ActAs, AnyUser) || slices.Contains(p.key.ActAs, user)
}

// adminAuth verifies admin credentials against the configured keys.
type adminAuth struct {
	byID map[string]*AdminKey
}

func newAdminAuth(k AdminKeys) *adminAuth {
	a := &adminAuth{byID: map[string]*AdminKey{}}
	for i := range k.Keys {
		a.byID[k.Keys[i].ID] = &k.Keys[i]
	}
	return a
}

// errBadCredential is the one answer to any credential that does not
// verify: which part was wrong is not said.
var errBadCredential = errors.New("an admin API key is required: Authorization: Bearer <key id>.<secret>")

// authenticate reads "Bearer <key id>.<secret>" from r.
func (a *adminAuth) authenticate(r *http.Request) (principal, error) {
	h := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return principal{}, errBadCredential
	}
	id, secret, ok := strings.Cut(strings.TrimSpace(cred), ".")
	if !ok || secret == "" {
		return principal{}, errBadCredential
	}
	sum := sha256.Sum256([]byte(secret))
	key := a.byID[id]
	want := make([]byte, sha256.Size) // an unknown id costs the same compare
	if key != nil {
		want, _ = hex.DecodeString(key.SHA256)
	}
	if subtle.ConstantTimeCompare(sum[:], want) != 1 || key == nil {
		return principal{}, errBadCredential
	}
	return principal{key: key}, nil
}
