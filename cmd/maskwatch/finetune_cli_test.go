package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/train/fixture"
)

// maskwatch finetune refuses bad flags before any work, naming the fix.
func TestFinetuneUsageErrors(t *testing.T) {
	data := fixture.Path(t, "seed-samples")
	empty := t.TempDir()
	os.MkdirAll(filepath.Join(empty, "labelled", "annotations"), 0o755)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--data", data}, "no --model"},
		{[]string{"--model", "default", "--no-deploy"}, "no images"},
		{[]string{"--model", "default", "--data", data}, "built-in model has no file"},
		{[]string{"--model", "default", "--data", data, "--no-deploy", "--engine", "onnx"},
			"--engine"},
		{[]string{"--model", "default", "--data", data, "--device", "http://cam1:8080"},
			"--token"},
		{[]string{"--model", "default", "--data", "/no/such/dir", "--no-deploy"}, "not a folder"},
		{[]string{"--model", "default", "--data", data, "--no-deploy", "--layers", "wings"},
			"names no layer"},
		{[]string{"--model", "default", "--collect", empty, "--no-deploy"}, "no labelled frames"},
		{[]string{"--model", "/no/model.mwb", "--data", data}, "--model"},
		{[]string{"--model", "default", "--data", data, "--no-deploy", "--memory-limit", "x"},
			"--memory-limit"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"finetune"}, tc.args...), &out,
			&errOut)
		if code != exitUsage || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("finetune %v: exit %d, %q; want a usage error with %q", tc.args, code,
				errOut.String(), tc.want)
		}
	}
}
