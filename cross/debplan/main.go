// Command debplan prints the Debian packages a cross-compilation sysroot
// needs: the dependency closure of some root packages over several Packages
// indexes, taking each package from the first suite that satisfies every
// constraint on it. cross/sysroot.sh runs it between `apt-get update` and
// `apt-get download`.
//
// Usage:
//
//	debplan --roots 'libopencv-dev (<< 4.7), libtensorflow-lite-dev' \
//	    [--sections libs,metapackages] [--dev PREFIX,...] SUITE=INDEX...
//
// Suites are preferred in the order they first appear on the command line;
// several indexes may share a suite name (bookworm, bookworm-updates and
// bookworm-security as "bookworm"). Only packages in the named sections, the
// development packages whose names start with a --dev prefix, and the roots
// are kept, each with its dependencies, and so are packages named as shared
// libraries are (libNAME followed by a version digit) whatever their section:
// a sysroot needs libraries and their headers, not programs or data.
//
// Output, one package a line, sorted by name, tab-separated:
// NAME VERSION ARCH SUITE DEBFILE SIZE. Exit status: 0 success, 1 failure,
// 2 usage error.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/maskwatch/maskwatch/cross/deb"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("debplan", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	roots := fs.String("roots", "", "dependency field of the packages wanted (required)")
	sections := fs.StringSlice("sections", []string{"libs", "metapackages", "oldlibs"},
		"sections whose packages are kept with their dependencies")
	dev := fs.StringSlice("dev", nil,
		"name prefixes of libdevel packages to keep (headers, .so links, .pc files)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *roots == "" || fs.NArg() == 0 {
		fmt.Fprintln(stderr, "debplan: want --roots and at least one SUITE=INDEX")
		return 2
	}

	idx := deb.NewIndex()
	tiers := map[string]int{}
	for _, arg := range fs.Args() {
		suite, path, ok := strings.Cut(arg, "=")
		if !ok || suite == "" || path == "" {
			fmt.Fprintf(stderr, "debplan: %q: want SUITE=INDEX (bookworm=/path/Packages)\n", arg)
			return 2
		}
		if _, seen := tiers[suite]; !seen {
			tiers[suite] = len(tiers)
		}
		pkgs, err := readIndex(path, suite, tiers[suite])
		if err != nil {
			fmt.Fprintf(stderr, "debplan: %v\n", err)
			return 1
		}
		idx.Add(pkgs)
	}

	keep := func(p *deb.Package) bool {
		section := p.Section[strings.LastIndexByte(p.Section, '/')+1:]
		for _, s := range *sections {
			if section == s {
				return true
			}
		}
		if libraryName(p.Name) {
			return true // a library filed in another section (libpthreadpool0)
		}
		if section != "libdevel" {
			return false
		}
		for _, prefix := range *dev {
			if strings.HasPrefix(p.Name, prefix) {
				return true
			}
		}
		return false
	}
	pkgs, err := idx.Closure(*roots, keep)
	if err != nil {
		fmt.Fprintf(stderr, "debplan: %v\n", err)
		return 1
	}

	bySuite := map[string]int64{}
	count := map[string]int{}
	for _, p := range pkgs {
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\t%s\t%d\n",
			p.Name, p.Version, p.Arch, p.Suite, p.DebName(), p.Size)
		bySuite[p.Suite] += p.Size
		count[p.Suite]++
	}
	for suite := range tiers {
		if count[suite] > 0 {
			fmt.Fprintf(stderr, "debplan: %d packages from %s (%.1f MB)\n",
				count[suite], suite, float64(bySuite[suite])/1e6)
		}
	}
	return 0
}

// libraryName reports whether name follows Debian's naming of shared
// library packages: "lib", the library's name, its soname version
// (libstdc++6, libopencv-core406, libpthreadpool0).
func libraryName(name string) bool {
	last := name[len(name)-1]
	return strings.HasPrefix(name, "lib") && last >= '0' && last <= '9'
}

func readIndex(path, suite string, tier int) ([]*deb.Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	defer f.Close()
	pkgs, err := deb.ParseIndex(f, suite, tier)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pkgs, nil
}
