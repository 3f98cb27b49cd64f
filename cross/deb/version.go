// Package deb reads Debian package indexes (the Packages files that apt
// downloads) and picks the dependency closure of a few packages from several
// suites, so that a cross-compilation sysroot can be assembled from .deb files
// without installing anything on the host.
package deb

import (
	"strings"
)

// CompareVersions compares two Debian version strings ("[epoch:]upstream[-revision]")
// the way dpkg does and returns -1, 0 or +1. A tilde sorts before anything,
// even the end of the string, so "1.0~rc1" < "1.0".
func CompareVersions(a, b string) int {
	ea, ua, ra := splitVersion(a)
	eb, ub, rb := splitVersion(b)
	if c := compareNumbers(ea, eb); c != 0 {
		return c
	}
	if c := compareFragment(ua, ub); c != 0 {
		return c
	}
	return compareFragment(ra, rb)
}

// splitVersion splits a version into epoch, upstream version and revision.
func splitVersion(v string) (epoch, upstream, revision string) {
	epoch = "0"
	if i := strings.IndexByte(v, ':'); i >= 0 {
		epoch, v = v[:i], v[i+1:]
	}
	upstream = v
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		upstream, revision = v[:i], v[i+1:]
	}
	return epoch, upstream, revision
}

// compareFragment is dpkg's comparison of an upstream version or a revision:
// alternating runs of non-digits (compared by character order, with letters
// before other characters and '~' first) and digits (compared as numbers).
func compareFragment(a, b string) int {
	for a != "" || b != "" {
		var na, nb string
		na, a = splitRun(a, false)
		nb, b = splitRun(b, false)
		if c := compareLexical(na, nb); c != 0 {
			return c
		}
		na, a = splitRun(a, true)
		nb, b = splitRun(b, true)
		if c := compareNumbers(na, nb); c != 0 {
			return c
		}
	}
	return 0
}

// splitRun returns the leading run of digits (or of non-digits) of s and the rest.
func splitRun(s string, digits bool) (run, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) == digits {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// compareLexical compares two runs of non-digits character by character.
func compareLexical(a, b string) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		oa, ob := order(a, i), order(b, i)
		if oa != ob {
			if oa < ob {
				return -1
			}
			return 1
		}
	}
	return 0
}

// order is the weight of s[i] in dpkg's ordering; past the end of s it is 0.
func order(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case c == '~':
		return -1
	case (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		return int(c)
	default:
		return int(c) + 256
	}
}

// compareNumbers compares two runs of digits of any length as numbers.
func compareNumbers(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}
