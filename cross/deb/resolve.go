package deb

import (
	"fmt"
	"sort"
	"strings"
)

// Index holds the packages of several suites, each with a tier: a package
// is taken from the lowest tier that has a version satisfying every
// constraint on it, so a stable suite can come first and a newer one fill in
// what stable lacks.
type Index struct {
	byName    map[string][]*Package
	providers map[string][]*Package
	sorted    bool
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{byName: map[string][]*Package{}, providers: map[string][]*Package{}}
}

// Add puts packages into the index.
func (x *Index) Add(pkgs []*Package) {
	for _, p := range pkgs {
		x.byName[p.Name] = append(x.byName[p.Name], p)
		for _, v := range p.Provides {
			x.providers[v.Name] = append(x.providers[v.Name], p)
		}
	}
	x.sorted = false
}

// Versions returns the versions of a package in order of preference:
// lower tier first, then newer version first.
func (x *Index) Versions(name string) []*Package {
	x.sort()
	return x.byName[name]
}

func (x *Index) sort() {
	if x.sorted {
		return
	}
	less := func(ps []*Package) func(i, j int) bool {
		return func(i, j int) bool {
			if ps[i].Tier != ps[j].Tier {
				return ps[i].Tier < ps[j].Tier
			}
			if c := CompareVersions(ps[i].Version, ps[j].Version); c != 0 {
				return c > 0
			}
			return ps[i].Suite < ps[j].Suite
		}
	}
	for _, ps := range x.byName {
		sort.SliceStable(ps, less(ps))
	}
	for _, ps := range x.providers {
		sort.SliceStable(ps, less(ps))
	}
	x.sorted = true
}

// Follow decides whether the dependencies of a chosen package are wanted
// too. A package it refuses is left out of the closure altogether, with its
// dependencies; roots are always kept.
type Follow func(p *Package) bool

// Closure returns the packages that roots need, recursively, sorted by name:
// roots is a dependency field ("libopencv-dev (<< 4.7), libtensorflow-lite-dev").
// Each package name appears once; when a later constraint rules out the
// version chosen first, the search starts again without that version, so a
// package moves to a newer suite only when something needs it to.
//
// Conflicts (Breaks, Conflicts) are ignored: the closure is unpacked as files,
// never installed. A dependency that no version of any suite satisfies is an
// error naming the package that needs it.
func (x *Index) Closure(roots string, follow Follow) ([]*Package, error) {
	x.sort()
	groups, err := ParseRelations(roots)
	if err != nil {
		return nil, fmt.Errorf("roots: %w", err)
	}
	r := &resolver{x: x, follow: follow, banned: map[*Package]bool{}}
	for attempt := 0; attempt < 1000; attempt++ {
		pkgs, ban, err := r.try(groups)
		if err != nil {
			return nil, err
		}
		if ban == nil {
			return pkgs, nil
		}
		r.banned[ban] = true
	}
	return nil, fmt.Errorf("no consistent choice after 1000 attempts")
}

type constraint struct {
	rel  Relation
	from *Package // nil for a root
}

type resolver struct {
	x      *Index
	follow Follow
	banned map[*Package]bool

	chosen map[string]*Package
	kept   map[string]bool // chosen and followed
	cons   map[string][]constraint
	queue  []*Package
}

// try resolves once with the versions banned so far. It returns the closure,
// or a version to ban before trying again.
func (r *resolver) try(roots [][]Relation) ([]*Package, *Package, error) {
	r.chosen = map[string]*Package{}
	r.kept = map[string]bool{}
	r.cons = map[string][]constraint{}
	r.queue = nil
	for _, g := range roots {
		if ban, err := r.need(g, nil); ban != nil || err != nil {
			return nil, ban, err
		}
	}
	for len(r.queue) > 0 {
		p := r.queue[0]
		r.queue = r.queue[1:]
		for _, g := range p.Depends {
			if ban, err := r.need(g, p); ban != nil || err != nil {
				return nil, ban, err
			}
		}
	}
	var out []*Package
	for name, p := range r.chosen {
		if r.kept[name] {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil, nil
}

// need satisfies one dependency group of from (nil: a root).
func (r *resolver) need(group []Relation, from *Package) (*Package, error) {
	// An alternative already satisfied settles the group.
	for _, rel := range group {
		if p := r.chosen[rel.Name]; p != nil && rel.Allows(p.Version) {
			r.cons[rel.Name] = append(r.cons[rel.Name], constraint{rel, from})
			return nil, nil
		}
		for _, p := range r.x.providers[rel.Name] {
			if r.chosen[p.Name] == p && providesAllowed(p, rel) {
				return nil, nil
			}
		}
	}

	for _, rel := range group {
		versions := r.x.byName[rel.Name]
		if len(versions) == 0 {
			if p := r.provider(rel); p != nil {
				r.choose(p)
				return nil, nil
			}
			continue
		}
		all := append(append([]constraint(nil), r.cons[rel.Name]...), constraint{rel, from})
		if p := r.best(versions, all); p != nil {
			if old := r.chosen[rel.Name]; old != nil {
				// The version taken first is too old (or too new) for this
				// relation, and another one suits everybody: never take it again.
				return old, nil
			}
			r.cons[rel.Name] = all
			r.choose(p)
			return nil, nil
		}
		if ban := r.culprit(rel, from, versions); ban != nil {
			return ban, nil
		}
	}
	who := "roots"
	if from != nil {
		who = from.String() + " (" + from.Suite + ")"
	}
	return nil, fmt.Errorf("%s needs %s: no version in any suite satisfies it "+
		"together with %s", who, relString(group), r.consString(group))
}

// best returns the preferred version allowed by every constraint, or nil.
func (r *resolver) best(versions []*Package, cons []constraint) *Package {
	for _, p := range versions {
		if r.banned[p] {
			continue
		}
		ok := true
		for _, c := range cons {
			if !c.rel.Allows(p.Version) {
				ok = false
				break
			}
		}
		if ok {
			return p
		}
	}
	return nil
}

// culprit picks the version to ban when rel (needed by from) cannot be met
// together with the constraints already on its package: from itself when
// another version of it exists, otherwise a package whose constraint rules
// out every version that rel allows.
func (r *resolver) culprit(rel Relation, from *Package, versions []*Package) *Package {
	if r.replaceable(from) {
		return from
	}
	for _, p := range versions {
		if r.banned[p] || !rel.Allows(p.Version) {
			continue
		}
		for _, c := range r.cons[rel.Name] {
			if !c.rel.Allows(p.Version) && r.replaceable(c.from) {
				return c.from
			}
		}
	}
	return nil
}

// replaceable reports whether p has another version not yet banned.
func (r *resolver) replaceable(p *Package) bool {
	if p == nil {
		return false
	}
	for _, q := range r.x.byName[p.Name] {
		if q != p && !r.banned[q] {
			return true
		}
	}
	return false
}

// provider returns the preferred package providing rel's virtual name.
func (r *resolver) provider(rel Relation) *Package {
	for _, p := range r.x.providers[rel.Name] {
		if r.banned[p] || !providesAllowed(p, rel) {
			continue
		}
		if q := r.chosen[p.Name]; q != nil && q != p {
			continue
		}
		return p
	}
	return nil
}

func providesAllowed(p *Package, rel Relation) bool {
	for _, v := range p.Provides {
		if v.Name != rel.Name {
			continue
		}
		if rel.Op == "" || (v.Op == "=" && rel.Allows(v.Version)) {
			return true
		}
	}
	return false
}

func (r *resolver) choose(p *Package) {
	if r.chosen[p.Name] == p {
		return
	}
	r.chosen[p.Name] = p
	if r.follow == nil || r.follow(p) || r.isRoot(p) {
		r.kept[p.Name] = true
		r.queue = append(r.queue, p)
	}
}

func (r *resolver) isRoot(p *Package) bool {
	for _, c := range r.cons[p.Name] {
		if c.from == nil {
			return true
		}
	}
	return false
}

func (r *resolver) consString(group []Relation) string {
	var parts []string
	for _, rel := range group {
		for _, c := range r.cons[rel.Name] {
			who := "roots"
			if c.from != nil {
				who = c.from.String()
			}
			parts = append(parts, c.rel.String()+" from "+who)
		}
	}
	if len(parts) == 0 {
		return "nothing else"
	}
	return strings.Join(parts, ", ")
}

func relString(group []Relation) string {
	parts := make([]string, len(group))
	for i, rel := range group {
		parts[i] = rel.String()
	}
	return strings.Join(parts, " | ")
}
