// Command elfneeds checks that the shared libraries ELF files need can all be
// found inside a sysroot, as the target's dynamic loader would look for them:
// each file's DT_NEEDED entries, recursively, in its RUNPATH (or RPATH) with
// $ORIGIN expanded, then the multiarch and default library folders. It
// catches a sysroot missing a library before a link or a run under qemu does.
//
// Usage:
//
//	elfneeds --root SYSROOT [--triplet aarch64-linux-gnu] FILE...
//
// A FILE path is taken as is (a binary built outside the sysroot) when it
// exists, and inside SYSROOT otherwise; glob patterns are expanded there.
// Every missing library is printed with the file that needs it. Exit status:
// 0 all found, 1 something missing or unreadable, 2 usage error.
package main

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("elfneeds", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", "", "sysroot `DIR` to look for libraries in (required)")
	triplet := fs.String("triplet", "aarch64-linux-gnu", "multiarch `TRIPLET` of the target")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *root == "" || fs.NArg() == 0 {
		fmt.Fprintln(stderr, "elfneeds: want --root SYSROOT and at least one FILE")
		return 2
	}

	var files []string
	for _, arg := range fs.Args() {
		if _, err := os.Stat(arg); err == nil {
			files = append(files, arg)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(*root, arg))
		if err != nil || len(matches) == 0 {
			fmt.Fprintf(stderr, "elfneeds: %s: not found, neither as is nor in %s\n", arg, *root)
			return 1
		}
		files = append(files, matches...)
	}

	rootAbs, err := filepath.Abs(*root)
	if err != nil {
		fmt.Fprintf(stderr, "elfneeds: %v\n", err)
		return 1
	}
	r := &resolver{root: rootAbs, triplet: *triplet, seen: map[string]bool{}}
	for _, f := range files {
		r.walk(f, r.targetDir(f), filepath.Base(f))
	}
	for _, p := range r.problems {
		fmt.Fprintln(stderr, "elfneeds: "+p)
	}
	if len(r.problems) > 0 {
		return 1
	}
	fmt.Fprintf(stdout, "elfneeds: %d files, %d libraries, all found in %s\n",
		len(files), len(r.seen)-len(files), *root)
	return 0
}

type resolver struct {
	root, triplet string
	seen          map[string]bool // host paths visited
	problems      []string
}

// walk visits one ELF file and the libraries it needs. host is where the
// file is on this machine, origin its folder as the target sees it.
func (r *resolver) walk(host, origin, chain string) {
	real, err := filepath.EvalSymlinks(host)
	if err != nil {
		real = host
	}
	if r.seen[real] {
		return
	}
	r.seen[real] = true
	f, err := elf.Open(real)
	if err != nil {
		r.problems = append(r.problems, fmt.Sprintf("%s: %v", chain, err))
		return
	}
	defer f.Close()
	needed, err := f.ImportedLibraries()
	if err != nil {
		r.problems = append(r.problems, fmt.Sprintf("%s: %v", chain, err))
		return
	}
	dirs := r.searchDirs(f, origin)
	sort.Strings(needed)
	for _, lib := range needed {
		found := ""
		for _, dir := range dirs {
			if _, err := os.Stat(filepath.Join(r.root, dir, lib)); err == nil {
				found = filepath.Join(dir, lib)
				break
			}
		}
		if found == "" {
			r.problems = append(r.problems, fmt.Sprintf("%s needs %s: not in the sysroot",
				chain, lib))
			continue
		}
		r.walk(filepath.Join(r.root, found), filepath.Dir(found), chain+" -> "+lib)
	}
}

// searchDirs lists, as the target sees them, the folders where the loader
// looks for f's libraries; origin is f's folder.
func (r *resolver) searchDirs(f *elf.File, origin string) []string {
	var dirs []string
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		values, _ := f.DynString(tag)
		for _, v := range values {
			for _, d := range strings.Split(v, ":") {
				d = strings.ReplaceAll(d, "${ORIGIN}", origin)
				d = strings.ReplaceAll(d, "$ORIGIN", origin)
				if d != "" {
					dirs = append(dirs, d)
				}
			}
		}
	}
	return append(dirs, "/lib/"+r.triplet, "/usr/lib/"+r.triplet, "/lib", "/usr/lib")
}

// targetDir is the folder of a host path as the target sees it: inside the
// sysroot, the path below it; elsewhere (a binary just built), the path as is.
func (r *resolver) targetDir(host string) string {
	abs, err := filepath.Abs(host)
	if err != nil {
		abs = host
	}
	if rel, err := filepath.Rel(r.root, filepath.Dir(abs)); err == nil &&
		!strings.HasPrefix(rel, "..") {
		return "/" + filepath.ToSlash(rel)
	}
	return filepath.Dir(abs)
}
