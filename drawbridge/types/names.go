package types

import (
	"fmt"
	"strings"

	"golang.org/x/mod/semver"
)

// maxNameLen bounds every single name (user, repository, tag, tree entry).
// Names become directory or object names in the store, so they must fit the
// usual 255-byte file name limit.
const maxNameLen = 255

// MaxPathDepth bounds the number of components of a tree path.
const MaxPathDepth = 64

// UserName is a validated user name: [A-Za-z0-9]+.
type UserName string

// RepoName is a validated repository name: [A-Za-z0-9-]+.
type RepoName string

// TagName is a validated semantic version (SemVer 2.0, no "v" prefix) in its
// canonical display form.
type TagName string

// TreeName is a validated tree entry name: [A-Za-z0-9._:-]+, except "." and
// "..".
type TreeName string

// TreePath is a validated path inside a tree. The empty path is the root.
type TreePath []TreeName

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// NameError reports an invalid user, repository or tree entry name.
// Reason is upstream Drawbridge's wording ("empty user name", "invalid
// characters in repository name", "empty entry name"), which its server
// sends after "Failed to parse user name: " and the like; our own limits
// (length, dot segments) have reasons of their own. Error adds the name
// and the offending character for people.
type NameError struct {
	Name   string
	Reason string
	Detail string
}

func (e *NameError) Error() string {
	if e.Detail == "" {
		return e.Reason
	}
	return e.Reason + ": " + e.Detail
}

// checkName validates s; kind is upstream's word for it ("user",
// "repository", "entry").
func checkName(kind, s string, ok func(byte) bool) error {
	if s == "" {
		return &NameError{Name: s, Reason: "empty " + kind + " name"}
	}
	if len(s) > maxNameLen {
		return &NameError{Name: s, Reason: fmt.Sprintf("%s name longer than %d bytes", kind, maxNameLen)}
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return &NameError{Name: s, Reason: "invalid characters in " + kind + " name",
				Detail: fmt.Sprintf("%q has %q", s, s[i])}
		}
	}
	return nil
}

// ParseUserName validates a user name.
func ParseUserName(s string) (UserName, error) {
	if err := checkName("user", s, isAlnum); err != nil {
		return "", err
	}
	return UserName(s), nil
}

// ParseRepoName validates a repository name.
func ParseRepoName(s string) (RepoName, error) {
	if err := checkName("repository", s, func(c byte) bool { return isAlnum(c) || c == '-' }); err != nil {
		return "", err
	}
	return RepoName(s), nil
}

// Semver is a validated semantic version (SemVer 2.0, no "v" prefix) in
// canonical form.
type Semver string

// Compare orders v and w by SemVer precedence (-1, 0 or +1); versions that
// differ only in build metadata are equal.
func (v Semver) Compare(w Semver) int { return semver.Compare("v"+string(v), "v"+string(w)) }

// ParseSemver parses a strict semantic version ("1.2.3", "1.2.3-rc.1+b5") and
// requires it to be written in canonical form, so one version has exactly one
// spelling (it becomes a storage key): three numbers without leading zeros,
// no "v" prefix.
//
// It uses golang.org/x/mod/semver, which parses without regular
// expressions: a package this one's users all import (enarx among them)
// should not compile any at every process start (docs/sandbox.md,
// "Performance").
func ParseSemver(s string) (Semver, error) {
	if len(s) > maxNameLen {
		return "", fmt.Errorf("invalid version: longer than %d bytes", maxNameLen)
	}
	if strings.HasPrefix(s, "v") {
		return "", fmt.Errorf("invalid version %q: no \"v\" prefix in a semantic version", s)
	}
	v := "v" + s
	if !semver.IsValid(v) {
		return "", fmt.Errorf("invalid version %q: not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])", s)
	}
	if c := semver.Canonical(v) + semver.Build(v); c != v {
		return "", fmt.Errorf("invalid version %q: not in canonical form (want %q)", s, c[1:])
	}
	return Semver(s), nil
}

// ParseTagName validates a tag name (a semantic version).
func ParseTagName(s string) (TagName, error) {
	if _, err := ParseSemver(s); err != nil {
		return "", fmt.Errorf("invalid tag name: %w", err)
	}
	return TagName(s), nil
}

// ParseTreeName validates one tree entry name.
func ParseTreeName(s string) (TreeName, error) {
	if err := checkName("entry", s, func(c byte) bool {
		return isAlnum(c) || c == '.' || c == '_' || c == ':' || c == '-'
	}); err != nil {
		return "", err
	}
	if s == "." || s == ".." {
		return "", &NameError{Name: s, Reason: fmt.Sprintf("entry name %q is a dot segment, which is not allowed", s)}
	}
	return TreeName(s), nil
}

// ParseTreePath parses a "/"-separated tree path. Leading and trailing
// slashes are ignored; "" and "/" are the root. Empty components ("a//b"),
// "." and ".." are rejected.
func ParseTreePath(s string) (TreePath, error) {
	s = strings.TrimPrefix(s, "/")
	s = strings.TrimSuffix(s, "/")
	if s == "" {
		return TreePath{}, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) > MaxPathDepth {
		return nil, fmt.Errorf("invalid tree path: deeper than %d components", MaxPathDepth)
	}
	p := make(TreePath, 0, len(parts))
	for _, part := range parts {
		n, err := ParseTreeName(part)
		if err != nil {
			return nil, fmt.Errorf("invalid tree path %q: %w", s, err)
		}
		p = append(p, n)
	}
	return p, nil
}

// String returns the path without leading slash; the root is "".
func (p TreePath) String() string {
	var b strings.Builder
	for i, n := range p {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(string(n))
	}
	return b.String()
}

// IsRoot reports whether p is the root of the tree.
func (p TreePath) IsRoot() bool { return len(p) == 0 }

// Parent returns the path of p's parent directory. It must not be called on
// the root.
func (p TreePath) Parent() TreePath { return p[:len(p)-1] }

// Child returns p extended by one name (a new slice; p is not modified).
func (p TreePath) Child(n TreeName) TreePath {
	c := make(TreePath, len(p)+1)
	copy(c, p)
	c[len(p)] = n
	return c
}
