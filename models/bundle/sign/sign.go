// Package sign signs model bundles with ed25519 keys and checks them, so a
// device accepts only models that came from someone it trusts. A signature
// is detached: it goes into one of the bundle's signature blocks (see
// package bundle) and covers every byte up to and including the bundle's
// sha256, which it leaves unchanged.
//
// Keys are files in the usual PEM forms, readable by openssl: a PKCS #8
// private key ("PRIVATE KEY", mode 0600) and a PKIX public key ("PUBLIC
// KEY"). Only ed25519 keys are supported; another kind is an error that
// says so.
package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/maskwatch/maskwatch/models/bundle"
)

// Algorithm opens every signature block this package writes; the public key
// (32 bytes) and the signature (64 bytes) follow it.
const Algorithm = "ed25519"

const blockSize = len(Algorithm) + ed25519.PublicKeySize + ed25519.SignatureSize

// Key file suffixes: keygen writes PREFIX.key and PREFIX.pub.
const (
	PrivateSuffix = ".key"
	PublicSuffix  = ".pub"
)

// The errors Verify returns, wrapped with the details.
var (
	// ErrUnsigned: the bundle carries no ed25519 signature.
	ErrUnsigned = errors.New("model bundle is not signed")
	// ErrUntrusted: every signature is by a key that is not trusted.
	ErrUntrusted = errors.New("model bundle is signed by a key this device does not trust")
	// ErrBadSignature: a signature names a trusted key but does not match the
	// bundle: it was changed after signing.
	ErrBadSignature = errors.New("model bundle signature does not match its contents")
)

// Fingerprint names a public key in messages: the first 16 hex digits of
// its sha256.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Signature is the contents of one signature block: the signer's key and
// its signature.
func Signature(signed []byte, key ed25519.PrivateKey) []byte {
	sig := ed25519.Sign(key, signed)
	out := make([]byte, 0, blockSize)
	out = append(out, Algorithm...)
	out = append(out, key.Public().(ed25519.PublicKey)...)
	return append(out, sig...)
}

// Bundle adds key's signature to b (replacing an earlier one by the same
// key); bundle.Encode or bundle.Write then writes it. It encodes b once to
// learn the bytes a signature covers.
func Bundle(b *bundle.Bundle, key ed25519.PrivateKey) error {
	if _, err := bundle.Encode(b); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	kept := b.Signatures[:0:0]
	for _, s := range b.Signatures {
		if k, _, ok := parse(s); ok && k.Equal(pub) {
			continue
		}
		kept = append(kept, s)
	}
	b.Signatures = append(kept, Signature(b.Signed, key))
	return nil
}

// File signs the bundle file at data (its bytes, which Decode must accept)
// and returns the signed file's bytes: data with key's signature block in
// place of an earlier one by the same key.
func File(data []byte, key ed25519.PrivateKey) ([]byte, error) {
	b, err := bundle.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	out := bytes.Clone(b.Signed)
	for _, s := range b.Signatures {
		if k, _, ok := parse(s); ok && k.Equal(pub) {
			continue
		}
		out = append(out, bundle.SignatureBlock(s)...)
	}
	return append(out, bundle.SignatureBlock(Signature(b.Signed, key))...), nil
}

func parse(block []byte) (ed25519.PublicKey, []byte, bool) {
	if len(block) != blockSize || !bytes.HasPrefix(block, []byte(Algorithm)) {
		return nil, nil, false
	}
	rest := block[len(Algorithm):]
	return ed25519.PublicKey(rest[:ed25519.PublicKeySize]), rest[ed25519.PublicKeySize:], true
}

// Signers lists the fingerprints of the keys that signed b, valid or not.
func Signers(b *bundle.Bundle) []string {
	var out []string
	for _, s := range b.Signatures {
		if k, _, ok := parse(s); ok {
			out = append(out, Fingerprint(k))
		}
	}
	return out
}

// Verify checks that one of b's signatures is a valid signature of its
// contents by one of the trusted keys, and returns that key's fingerprint.
// The error wraps ErrUnsigned, ErrUntrusted or ErrBadSignature and names
// the keys involved.
func Verify(b *bundle.Bundle, trusted []ed25519.PublicKey) (string, error) {
	var signers []string
	var bad error
	for _, s := range b.Signatures {
		k, sig, ok := parse(s)
		if !ok {
			continue
		}
		signers = append(signers, Fingerprint(k))
		for _, t := range trusted {
			if !k.Equal(t) {
				continue
			}
			if ed25519.Verify(k, b.Signed, sig) {
				return Fingerprint(k), nil
			}
			bad = fmt.Errorf("%w: key %s", ErrBadSignature, Fingerprint(k))
		}
	}
	switch {
	case bad != nil:
		return "", bad
	case len(signers) == 0:
		return "", fmt.Errorf("%w: sign it with masktrain export --sign KEY or masktrain "+
			"sign --key KEY", ErrUnsigned)
	}
	want := make([]string, len(trusted))
	for i, t := range trusted {
		want[i] = Fingerprint(t)
	}
	return "", fmt.Errorf("%w: signed by %s, trusted: %s", ErrUntrusted,
		strings.Join(signers, ", "), strings.Join(want, ", "))
}

// GenerateKey makes a new key pair.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("sign: generating a key: %w", err)
	}
	return pub, priv, nil
}

// WriteKeyPair writes a new key pair to prefix.key (mode 0600) and
// prefix.pub, refusing to overwrite either file. It returns the public
// key.
func WriteKeyPair(prefix string) (ed25519.PublicKey, error) {
	privPath, pubPath := prefix+PrivateSuffix, prefix+PublicSuffix
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("sign: %s exists: choose another prefix or remove it first "+
				"(a device that trusts its public key would no longer accept new bundles)", p)
		}
	}
	pub, priv, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if err := writeNew(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY",
		Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY",
		Bytes: pubDER}), 0o644); err != nil {
		os.Remove(privPath)
		return nil, err
	}
	return pub, nil
}

// writeNew creates path with mode, failing if it exists.
func writeNew(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("sign: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("sign: writing %s: %w", path, err)
	}
	return f.Close()
}

// ReadPrivateKey reads an ed25519 private key file (PKCS #8 PEM). A key
// file others can read is refused: chmod 600 it.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("private key %s: mode %v lets others read it: chmod 600 %s",
			path, info.Mode().Perm(), path)
	}
	block, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(block)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key %s: a %T, not ed25519: make one with "+
			"masktrain keygen", path, k)
	}
	return priv, nil
}

// ReadPublicKey reads an ed25519 public key file (PKIX PEM). A private key
// file is accepted too, and its public half taken.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("public key %s: no PEM block: give the .pub file masktrain "+
			"keygen wrote", path)
	}
	if block.Type == "PRIVATE KEY" {
		priv, err := ReadPrivateKey(path)
		if err != nil {
			return nil, err
		}
		return priv.Public().(ed25519.PublicKey), nil
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("public key %s: a %q PEM block, want PUBLIC KEY", path,
			block.Type)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key %s: a %T, not ed25519: make one with masktrain "+
			"keygen", path, k)
	}
	return pub, nil
}

func readPEM(path, kind string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != kind {
		return nil, fmt.Errorf("key %s: no %s PEM block: give the file masktrain keygen "+
			"wrote", path, kind)
	}
	return block.Bytes, nil
}
