package provision

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/parley-im/parley/schemas"
)

// ComponentRole is what one component may do in the views' keyspaces: the
// CQL permissions its role gets on each of them, and nothing else.
type ComponentRole struct {
	Component   string
	Permissions []string
}

// ComponentRoles is the grants table (top-level README, Deploying): the
// projector is the only writer of the views; query, the gateway, the push
// notifier and the webhook dispatcher only read them. The decider (ingest)
// never reaches Cassandra and has no role. The replay tool creates
// keyspaces and is run by an operator with a role of their own.
var ComponentRoles = []ComponentRole{
	{"projector", []string{"SELECT", "MODIFY"}},
	{"query", []string{"SELECT"}},
	{"gateway", []string{"SELECT"}},
	{"notifier", []string{"SELECT"}},
	{"webhooks", []string{"SELECT"}},
}

// DefaultRolePrefix starts every component's role name: parley_projector,
// parley_query, …
const DefaultRolePrefix = "parley_"

// Roles says which component roles to create and where they are granted.
type Roles struct {
	// Prefix of the role names (default DefaultRolePrefix).
	Prefix string
	// Passwords of the components whose roles to create or update, by
	// component name (ComponentRoles); each must be non-empty.
	Passwords map[string]string
	// Keyspaces the roles are granted on: the base keyspace, and any
	// rebuilt one the components are to use. Each must exist.
	Keyspaces []string
}

// RoleName is the role a component logs in as.
func (r Roles) RoleName(component string) string {
	p := r.Prefix
	if p == "" {
		p = DefaultRolePrefix
	}
	return p + component
}

// CassandraRoles creates each requested component's role (LOGIN, not a
// superuser) with its password, or, for a role that exists, changes its
// password when the given one differs (and changes nothing when it is the
// same), and grants it its permissions (ComponentRoles) on every keyspace
// of r. It runs as a superuser. A role that is a superuser, or that holds
// (itself or through a role granted to it) a permission on those keyspaces
// beyond its row of the table, is a mismatch: nothing is changed and every
// difference is named, as for topics and keyspaces. Passwords never appear
// in the report or in an error.
func CassandraRoles(ctx context.Context, s *gocql.Session, r Roles, rep *Report) error {
	if len(r.Passwords) == 0 {
		return nil
	}
	if len(r.Keyspaces) == 0 {
		return errors.New("provision: roles need a keyspace to be granted on")
	}
	byName := map[string]ComponentRole{}
	for _, c := range ComponentRoles {
		byName[c.Component] = c
	}
	for _, comp := range slices.Sorted(maps.Keys(r.Passwords)) {
		if _, ok := byName[comp]; !ok {
			return fmt.Errorf("provision: no Cassandra role for component %q (want %s)", comp, strings.Join(Components(), ", "))
		}
		if r.Passwords[comp] == "" {
			return fmt.Errorf("provision: the %s role (%s) needs a password", comp, r.RoleName(comp))
		}
		if err := schemas.CheckKeyspace(r.RoleName(comp)); err != nil { // the same identifier rule
			return fmt.Errorf("provision: role name %q: letters, digits and _, starting with a letter", r.RoleName(comp))
		}
	}
	for _, ks := range r.Keyspaces {
		if err := schemas.CheckKeyspace(ks); err != nil {
			return err
		}
		var name string
		err := s.Query("SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?", ks).ScanContext(ctx, &name)
		if errors.Is(err, gocql.ErrNotFound) {
			return fmt.Errorf("provision: keyspace %s does not exist; create it first (or leave it out of the grants)", ks)
		}
		if err != nil {
			return fmt.Errorf("provision: read keyspace %s: %w", ks, err)
		}
	}

	// Look first, change nothing until everything agrees.
	type existing struct {
		login, samePassword bool
	}
	exists := map[string]existing{}
	var problems []string
	for _, comp := range slices.Sorted(maps.Keys(r.Passwords)) {
		role := r.RoleName(comp)
		var super, login bool
		var hash string
		err := s.Query("SELECT is_superuser, can_login, salted_hash FROM system_auth.roles WHERE role = ?", role).ScanContext(ctx, &super, &login, &hash)
		if errors.Is(err, gocql.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("provision: read role %s (roles are provisioned by a superuser): %w", role, err)
		}
		// The node keeps a bcrypt hash: a run with the same password
		// changes nothing (and Cassandra refuses a second change of a
		// role's password within 5 s).
		exists[role] = existing{login: login, samePassword: bcrypt.CompareHashAndPassword([]byte(hash), []byte(r.Passwords[comp])) == nil}
		if super {
			problems = append(problems, fmt.Sprintf("role %s is a superuser; a component's role must not be one", role))
		}
		extra, err := extraPermissions(ctx, s, role, byName[comp].Permissions, r.Keyspaces)
		if err != nil {
			return err
		}
		for _, e := range extra {
			problems = append(problems, fmt.Sprintf("role %s has %s (revoke it: %s may only %s)", role, e, comp, strings.Join(byName[comp].Permissions, " and ")))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w:\n  %s", ErrMismatch, strings.Join(problems, "\n  "))
	}

	for _, comp := range slices.Sorted(maps.Keys(r.Passwords)) {
		role, pw := r.RoleName(comp), r.Passwords[comp]
		// Role options take no bind markers: the password is a literal.
		lit := "'" + strings.ReplaceAll(pw, "'", "''") + "'"
		verb, stmt := "created", fmt.Sprintf("CREATE ROLE IF NOT EXISTS %s WITH PASSWORD = %s AND LOGIN = true AND SUPERUSER = false", role, lit)
		if e, ok := exists[role]; ok {
			switch {
			case e.samePassword && e.login:
				verb, stmt = "ok", ""
			case e.samePassword:
				verb, stmt = "ok, login enabled", fmt.Sprintf("ALTER ROLE %s WITH LOGIN = true", role)
			default:
				verb, stmt = "password changed", fmt.Sprintf("ALTER ROLE %s WITH PASSWORD = %s AND LOGIN = true", role, lit)
			}
		}
		if stmt != "" {
			if err := s.Query(stmt).ExecContext(ctx); err != nil {
				return fmt.Errorf("provision: role %s: %s", role, redact(err.Error(), lit, pw))
			}
		}
		perms := byName[comp].Permissions
		for _, ks := range r.Keyspaces {
			for _, p := range perms {
				if err := s.Query(fmt.Sprintf("GRANT %s ON KEYSPACE %s TO %s", p, ks, role)).ExecContext(ctx); err != nil {
					return fmt.Errorf("provision: grant %s on %s to %s: %w", p, ks, role, err)
				}
			}
		}
		rep.add("role %-29s %s: login, %s on %s", role, verb, strings.Join(perms, " and "), strings.Join(r.Keyspaces, ", "))
	}
	return nil
}

// Components are the component names ComponentRoles knows.
func Components() []string {
	out := make([]string, len(ComponentRoles))
	for i, c := range ComponentRoles {
		out[i] = c.Component
	}
	return out
}

// extraPermissions lists what role holds (directly or through a granted
// role) on the keyspaces, their tables or all keyspaces beyond want on the
// keyspaces themselves.
func extraPermissions(ctx context.Context, s *gocql.Session, role string, want, keyspaces []string) ([]string, error) {
	iter := s.Query("LIST ALL PERMISSIONS OF " + role).IterContext(ctx)
	var extra []string
	row := map[string]any{}
	for iter.MapScan(row) {
		resource, _ := row["resource"].(string)
		perm, _ := row["permission"].(string)
		from, _ := row["role"].(string)
		clear(row)
		// A grant on one of the keyspaces or their tables counts when the
		// table wants it; one on all keyspaces reaches beyond them.
		covered, wanted := resource == "<all keyspaces>", false
		for _, ks := range keyspaces {
			if resource == "<keyspace "+ks+">" {
				covered, wanted = true, slices.Contains(want, perm)
			}
			if strings.HasPrefix(resource, "<table "+ks+".") {
				covered, wanted = true, slices.Contains(want, perm)
			}
		}
		if !covered || wanted {
			continue
		}
		e := perm + " on " + resource
		if from != "" && from != role {
			e += " through role " + from
		}
		extra = append(extra, e)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("provision: list permissions of %s: %w", role, err)
	}
	return extra, nil
}

func redact(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[SECRET]")
		}
	}
	return msg
}
