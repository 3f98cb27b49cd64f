package deb

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Package is one binary package version as a Packages index describes it.
type Package struct {
	Name     string
	Version  string
	Arch     string
	Section  string
	Filename string // path below the archive root
	Size     int64
	SHA256   string

	// Suite names the index the package came from ("bookworm", "sid").
	Suite string
	// Tier orders suites by preference: a lower tier is taken first.
	Tier int

	// Depends holds Pre-Depends and Depends: every group must be satisfied,
	// by any one of its alternatives.
	Depends [][]Relation
	// Provides lists the virtual packages this one stands for.
	Provides []Relation
}

// String names the package version as apt does: name=version.
func (p *Package) String() string { return p.Name + "=" + p.Version }

// DebName is the file name `apt-get download` gives the package:
// NAME_VERSION_ARCH.deb, with the epoch's colon written %3a.
func (p *Package) DebName() string {
	return p.Name + "_" + strings.ReplaceAll(p.Version, ":", "%3a") + "_" + p.Arch + ".deb"
}

// Relation is one alternative of a dependency: a package name and, when Op
// is not empty, a version constraint (Op is one of << <= = >= >>).
type Relation struct {
	Name    string
	Op      string
	Version string
}

// String writes the relation as a control file does: "name (>= 1.0)".
func (r Relation) String() string {
	if r.Op == "" {
		return r.Name
	}
	return r.Name + " (" + r.Op + " " + r.Version + ")"
}

// Allows reports whether version satisfies the relation's constraint.
func (r Relation) Allows(version string) bool {
	if r.Op == "" {
		return true
	}
	c := CompareVersions(version, r.Version)
	switch r.Op {
	case "<<":
		return c < 0
	case "<=":
		return c <= 0
	case "=":
		return c == 0
	case ">=":
		return c >= 0
	case ">>":
		return c > 0
	}
	return false
}

// ParseRelations parses a dependency field such as
// "libc6 (>= 2.34), libblas3 | libblas.so.3". Architecture qualifiers
// (":any") and architecture lists ("[amd64]") are dropped; build profiles
// ("<!nocheck>") never occur in binary indexes and are not understood.
func ParseRelations(field string) ([][]Relation, error) {
	var groups [][]Relation
	for _, group := range strings.Split(field, ",") {
		group = strings.TrimSpace(group)
		if group == "" {
			continue
		}
		var alts []Relation
		for _, alt := range strings.Split(group, "|") {
			r, err := parseRelation(alt)
			if err != nil {
				return nil, err
			}
			alts = append(alts, r)
		}
		groups = append(groups, alts)
	}
	return groups, nil
}

func parseRelation(s string) (Relation, error) {
	s = stripBracketed(s, '[', ']')
	s = strings.TrimSpace(s)
	var r Relation
	name, cons, hasCons := strings.Cut(s, "(")
	r.Name = strings.TrimSpace(name)
	if i := strings.IndexByte(r.Name, ':'); i >= 0 {
		r.Name = r.Name[:i]
	}
	if r.Name == "" || strings.ContainsAny(r.Name, " \t") {
		return r, fmt.Errorf("bad relation %q: want NAME or NAME (OP VERSION)", s)
	}
	if !hasCons {
		return r, nil
	}
	cons, ok := strings.CutSuffix(strings.TrimSpace(cons), ")")
	if !ok {
		return r, fmt.Errorf("bad relation %q: unclosed parenthesis", s)
	}
	cons = strings.TrimSpace(cons)
	for _, op := range []string{"<<", "<=", ">=", ">>", "=", "<", ">"} {
		if v, found := strings.CutPrefix(cons, op); found {
			r.Op, r.Version = op, strings.TrimSpace(v)
			break
		}
	}
	// "<" and ">" are the old spellings of "<=" and ">=".
	switch r.Op {
	case "<":
		r.Op = "<="
	case ">":
		r.Op = ">="
	}
	if r.Op == "" || r.Version == "" {
		return r, fmt.Errorf("bad relation %q: want (OP VERSION) with OP one of << <= = >= >>", s)
	}
	return r, nil
}

// stripBracketed removes every open...close span from s.
func stripBracketed(s string, open, close byte) string {
	for {
		i := strings.IndexByte(s, open)
		if i < 0 {
			return s
		}
		j := strings.IndexByte(s[i:], close)
		if j < 0 {
			return s[:i]
		}
		s = s[:i] + s[i+j+1:]
	}
}

// ParseIndex reads a Packages index (control stanzas separated by blank lines).
// Every package gets suite and tier. A stanza without Package or Version, or
// with a dependency field it cannot parse, is an error naming its line.
func ParseIndex(r io.Reader, suite string, tier int) ([]*Package, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var (
		pkgs   []*Package
		fields = map[string]string{}
		last   string
		line   int
		start  int
	)
	flush := func() error {
		if len(fields) == 0 {
			return nil
		}
		p, err := packageFromFields(fields)
		if err != nil {
			return fmt.Errorf("%s index, stanza at line %d: %w", suite, start, err)
		}
		p.Suite, p.Tier = suite, tier
		pkgs = append(pkgs, p)
		clear(fields)
		return nil
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		switch {
		case strings.TrimSpace(text) == "":
			if err := flush(); err != nil {
				return nil, err
			}
			last = ""
		case text[0] == ' ' || text[0] == '\t':
			if last != "" {
				fields[last] += "\n" + strings.TrimSpace(text)
			}
		default:
			key, value, ok := strings.Cut(text, ":")
			if !ok {
				return nil, fmt.Errorf("%s index, line %d: %q is not a field", suite, line, text)
			}
			if len(fields) == 0 {
				start = line
			}
			last = key
			fields[key] = strings.TrimSpace(value)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s index: %w", suite, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return pkgs, nil
}

func packageFromFields(f map[string]string) (*Package, error) {
	p := &Package{
		Name:     f["Package"],
		Version:  f["Version"],
		Arch:     f["Architecture"],
		Section:  f["Section"],
		Filename: f["Filename"],
		SHA256:   f["SHA256"],
	}
	if p.Name == "" || p.Version == "" {
		return nil, fmt.Errorf("no Package or Version field")
	}
	if s := f["Size"]; s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("package %s: bad Size %q: %w", p.Name, s, err)
		}
		p.Size = n
	}
	for _, key := range []string{"Pre-Depends", "Depends"} {
		groups, err := ParseRelations(f[key])
		if err != nil {
			return nil, fmt.Errorf("package %s, %s: %w", p.Name, key, err)
		}
		p.Depends = append(p.Depends, groups...)
	}
	provides, err := ParseRelations(f["Provides"])
	if err != nil {
		return nil, fmt.Errorf("package %s, Provides: %w", p.Name, err)
	}
	for _, g := range provides {
		p.Provides = append(p.Provides, g...)
	}
	return p, nil
}
