package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/maskwatch/maskwatch/edge/deploy"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/bundle/sign"
)

const deployUsage = `Usage: masktrain deploy --to URL [--to URL ...] --token TOKEN BUNDLE

Uploads a model bundle to each device's POST /api/model (maskwatch run with
--model PATH and an admin token) and reports, device by device, either the
version it now runs or why it refused the bundle (HTTP status and reason).
A device checks the whole bundle (size, sha256, format version, signature
when started with --trust) before changing anything, self-checks it on
stored frames, and keeps its running model when anything fails.

Exit status: 0 when every device took the bundle, 1 when one refused it or
could not be reached, 2 for a usage error.
`

type deployOptions struct {
	to        []string
	token     string
	tokenFile string
	timeout   time.Duration
	json      bool
}

func deployFlags() (*pflag.FlagSet, *deployOptions) {
	o := &deployOptions{}
	fs := pflag.NewFlagSet("deploy", pflag.ContinueOnError)
	fs.StringArrayVar(&o.to, "to", nil, "device `URL` (http://cam1:8080); repeat for more")
	fs.StringVar(&o.token, "token", "", "the devices' admin bearer `TOKEN`")
	fs.StringVar(&o.tokenFile, "token-file", "", "read the token from `FILE` (keeps it out "+
		"of the process list)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up on a device after "+
		"`DURATION`")
	fs.BoolVar(&o.json, "json", false, "print one JSON line a device")
	return fs, o
}

func runDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := deployFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printCommandUsage(stdout, fs, deployUsage)
			return exitOK
		}
		return commandUsageError(stderr, "deploy", err)
	}
	token, err := o.check(fs)
	if err != nil {
		return commandUsageError(stderr, "deploy", err)
	}
	path := fs.Arg(0)
	data, err := os.ReadFile(path)
	if err != nil {
		return commandUsageError(stderr, "deploy", fmt.Errorf("bundle: %w", err))
	}
	b, err := bundle.Decode(data)
	if err != nil {
		return commandUsageError(stderr, "deploy", fmt.Errorf("%s: %w", path, err))
	}
	if signers := sign.Signers(b); len(signers) == 0 {
		slog.Warn("deploy: the bundle is not signed: devices started with --trust will "+
			"refuse it (sign it with masktrain sign --key KEY)", "bundle", path)
	}
	slog.Info("deploy: start", "bundle", path, "version", b.ShortVersion(),
		"bytes", len(data), "devices", len(o.to))

	client := &http.Client{Timeout: o.timeout}
	results := make([]deploy.Result, len(o.to))
	var wg sync.WaitGroup
	for i, device := range o.to {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = deploy.Upload(ctx, client, device, token, data)
		}()
	}
	wg.Wait()

	code := exitOK
	for _, r := range results {
		if !r.OK {
			code = exitFailed
		}
		if o.json {
			line, _ := json.Marshal(r)
			fmt.Fprintf(stdout, "%s\n", line)
			continue
		}
		fmt.Fprintln(stdout, describeResult(r))
	}
	return code
}

func (o *deployOptions) check(fs *pflag.FlagSet) (string, error) {
	switch {
	case fs.NArg() == 0:
		return "", errors.New("name the bundle file to deploy")
	case fs.NArg() > 1:
		return "", fmt.Errorf("unexpected argument %q: give one bundle; name devices with "+
			"--to URL", fs.Arg(1))
	case len(o.to) == 0:
		return "", errors.New("no --to given: name a device, such as --to http://cam1:8080")
	case o.token != "" && o.tokenFile != "":
		return "", errors.New("--token and --token-file: give one")
	case o.timeout <= 0:
		return "", fmt.Errorf("--timeout %v: give a positive duration", o.timeout)
	}
	for _, d := range o.to {
		if _, err := deploy.ModelURL(d); err != nil {
			return "", fmt.Errorf("--to: %w", err)
		}
	}
	token := o.token
	if o.tokenFile != "" {
		raw, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(raw))
	}
	if token == "" {
		return "", errors.New("no --token given: devices take bundles only with their " +
			"admin token (maskwatch run --admin-token)")
	}
	return token, nil
}

// describeResult is one line of the report.
func describeResult(r deploy.Result) string {
	switch {
	case r.OK && r.Previous == r.Version:
		return fmt.Sprintf("%s: accepted, already running %s", r.Device, r.Version)
	case r.OK:
		return fmt.Sprintf("%s: accepted, now running %s (was %s) in %.1f s", r.Device,
			r.Version, orNone(r.Previous), r.Seconds)
	case r.Code == 0:
		return fmt.Sprintf("%s: not reached: %s", r.Device, r.Message)
	}
	stage := ""
	if r.Stage != "" {
		stage = " at " + r.Stage
	}
	return fmt.Sprintf("%s: refused (HTTP %d %s)%s: %s", r.Device, r.Code,
		http.StatusText(r.Code), stage, r.Message)
}
