package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/defaultmodel"
)

// Usage errors of keygen, sign and deploy name the flag and the fix.
func TestKeygenSignDeployUsage(t *testing.T) {
	dir := t.TempDir()
	raw, err := defaultmodel.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "m.mwb")
	os.WriteFile(model, raw, 0o644)
	if code, _, stderr := runCLI(context.Background(), "keygen", "--out",
		filepath.Join(dir, "k")); code != exitOK {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	open := filepath.Join(dir, "open.key")
	b, _ := os.ReadFile(filepath.Join(dir, "k.key"))
	os.WriteFile(open, b, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keygen"}, "no --out"},
		{[]string{"keygen", "--out", filepath.Join(dir, "k")}, "exists"},
		{[]string{"sign", model}, "no --key"},
		{[]string{"sign", "--key", open, model}, "chmod 600"},
		{[]string{"sign", "--key", filepath.Join(dir, "k.key")}, "one bundle"},
		{[]string{"deploy", model}, "no --to"},
		{[]string{"deploy", "--to", "http://cam1:8080", model}, "no --token"},
		{[]string{"deploy", "--to", "ftp://cam1", "--token", "t", model}, "http://cam1:8080"},
		{[]string{"deploy", "--to", "cam1", "--token", "t"}, "name the bundle"},
		{[]string{"deploy", "--to", "cam1", "--token", "t", filepath.Join(dir, "none.mwb")},
			"no such file"},
		{[]string{"export", "--model", "default", "--precision", "fp16", "--out",
			filepath.Join(dir, "x.mwb"), "--sign", open}, "chmod 600"},
	} {
		code, _, stderr := runCLI(context.Background(), tc.args...)
		if code == exitOK || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error with %q", tc.args, code, stderr,
				tc.want)
		}
	}
}
