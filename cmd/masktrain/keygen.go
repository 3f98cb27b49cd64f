package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/bundle/sign"
	"github.com/maskwatch/maskwatch/models/safefile"
)

const keygenUsage = `Usage: masktrain keygen --out PREFIX

Makes an ed25519 key pair for signing model bundles: PREFIX.key, the
private key (mode 0600; keep it on the desktop), and PREFIX.pub, the public
key to copy to devices, which then accept only bundles it signed
(maskwatch run --trust PREFIX.pub). Existing files are never overwritten.
`

const signUsage = `Usage: masktrain sign --key KEY BUNDLE [--out FILE]

Adds an ed25519 signature to a model bundle (replacing an earlier one by the
same key) without changing what it signs. The bundle is rewritten in place
atomically unless --out names another file.
`

func keygenFlags() (*pflag.FlagSet, *string) {
	fs := pflag.NewFlagSet("keygen", pflag.ContinueOnError)
	out := fs.String("out", "", "`PREFIX` of the key files: PREFIX.key and PREFIX.pub")
	return fs, out
}

func runKeygen(args []string, stdout, stderr io.Writer) int {
	fs, out := keygenFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printCommandUsage(stdout, fs, keygenUsage)
			return exitOK
		}
		return commandUsageError(stderr, "keygen", err)
	}
	switch {
	case fs.NArg() > 0:
		return commandUsageError(stderr, "keygen", fmt.Errorf("unexpected argument %q: "+
			"name the key files with --out PREFIX", fs.Arg(0)))
	case *out == "":
		return commandUsageError(stderr, "keygen", errors.New("no --out given: name the "+
			"key files, such as --out keys/maskwatch"))
	}
	if dir := filepath.Dir(*out); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			slog.Error("keygen: failed", "err", err)
			return exitFailed
		}
	}
	pub, err := sign.WriteKeyPair(*out)
	if err != nil {
		slog.Error("keygen: failed", "err", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "private key %s (keep it here), public key %s (copy it to devices), "+
		"fingerprint %s\n", *out+sign.PrivateSuffix, *out+sign.PublicSuffix,
		sign.Fingerprint(pub))
	return exitOK
}

type signOptions struct {
	key, out string
}

func signFlags() (*pflag.FlagSet, *signOptions) {
	o := &signOptions{}
	fs := pflag.NewFlagSet("sign", pflag.ContinueOnError)
	fs.StringVar(&o.key, "key", "", "ed25519 private `KEY` file (masktrain keygen)")
	fs.StringVar(&o.out, "out", "", "write the signed bundle to `FILE` (default: in place)")
	return fs, o
}

func runSign(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := signFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printCommandUsage(stdout, fs, signUsage)
			return exitOK
		}
		return commandUsageError(stderr, "sign", err)
	}
	if fs.NArg() != 1 {
		return commandUsageError(stderr, "sign", errors.New("name one bundle file to sign"))
	}
	if o.key == "" {
		return commandUsageError(stderr, "sign", errors.New("no --key given: name the "+
			"private key file masktrain keygen wrote"))
	}
	key, err := sign.ReadPrivateKey(o.key)
	if err != nil {
		return commandUsageError(stderr, "sign", fmt.Errorf("--key: %w", err))
	}
	in := fs.Arg(0)
	out := o.out
	if out == "" {
		out = in
	}
	raw, err := os.ReadFile(in)
	if err != nil {
		slog.Error("sign: failed", "err", err)
		return exitFailed
	}
	signed, err := sign.File(raw, key)
	if err != nil {
		slog.Error("sign: failed", "bundle", in, "err", err)
		return exitFailed
	}
	if err := safefile.Write(out, signed, 0o644); err != nil {
		slog.Error("sign: failed", "err", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "%s: signed by %s\n", out,
		sign.Fingerprint(key.Public().(ed25519.PublicKey)))
	return exitOK
}

// readSignKey reads --sign's private key; an empty path means no signing.
func readSignKey(path string) (ed25519.PrivateKey, error) {
	if path == "" {
		return nil, nil
	}
	return sign.ReadPrivateKey(path)
}

// signBundle signs b with key, when there is one.
func signBundle(b *bundle.Bundle, key ed25519.PrivateKey) error {
	if key == nil {
		return nil
	}
	return sign.Bundle(b, key)
}
