package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/defaultmodel"
)

func defaultBytes(t *testing.T) []byte {
	t.Helper()
	raw, err := defaultmodel.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func keyPair(t *testing.T, name string) (ed25519.PublicKey, ed25519.PrivateKey, string) {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), name)
	pub, err := WriteKeyPair(prefix)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ReadPrivateKey(prefix + PrivateSuffix)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv, prefix
}

func TestKeyFiles(t *testing.T) {
	pub, priv, prefix := keyPair(t, "desk")
	info, err := os.Stat(prefix + PrivateSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", info.Mode().Perm())
	}
	back, err := ReadPublicKey(prefix + PublicSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(pub) || !priv.Public().(ed25519.PublicKey).Equal(pub) {
		t.Error("the key files do not hold the pair generated")
	}
	fromPriv, err := ReadPublicKey(prefix + PrivateSuffix)
	if err != nil || !fromPriv.Equal(pub) {
		t.Errorf("public half of the private key file: %v", err)
	}
	if _, err := WriteKeyPair(prefix); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("a second keygen over the same prefix: %v, want a refusal", err)
	}
	if err := os.Chmod(prefix+PrivateSuffix, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPrivateKey(prefix + PrivateSuffix); err == nil ||
		!strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a private key others can read: %v, want a refusal naming chmod", err)
	}
	if _, err := ReadPrivateKey(prefix + PublicSuffix); err == nil {
		t.Error("a public key file read as a private key")
	}
	junk := filepath.Join(t.TempDir(), "junk.pub")
	os.WriteFile(junk, []byte("not a key"), 0o644)
	if _, err := ReadPublicKey(junk); err == nil || !strings.Contains(err.Error(), "PEM") {
		t.Errorf("a file without PEM: %v", err)
	}
}

func TestSignAndVerify(t *testing.T) {
	raw := defaultBytes(t)
	pub, priv, _ := keyPair(t, "desk")
	otherPub, otherPriv, _ := keyPair(t, "other")

	plain, err := bundle.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(plain, []ed25519.PublicKey{pub}); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned bundle: %v, want ErrUnsigned", err)
	}

	signed, err := File(raw, priv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Decode(signed)
	if err != nil {
		t.Fatalf("a signed bundle no longer decodes: %v", err)
	}
	if b.Digest != plain.Digest {
		t.Error("signing changed the bundle's sha256")
	}
	fp, err := Verify(b, []ed25519.PublicKey{otherPub, pub})
	if err != nil || fp != Fingerprint(pub) {
		t.Errorf("Verify = %q, %v; want %s", fp, err, Fingerprint(pub))
	}
	if _, err := Verify(b, []ed25519.PublicKey{otherPub}); !errors.Is(err, ErrUntrusted) ||
		!strings.Contains(err.Error(), Fingerprint(pub)) {
		t.Errorf("signed by an untrusted key: %v, want ErrUntrusted naming the signer", err)
	}

	// Signing again with the same key replaces its block; another key adds one.
	again, err := File(signed, priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, signed) {
		t.Error("signing twice with one key changed the file")
	}
	both, err := File(signed, otherPriv)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := bundle.Decode(both)
	if err != nil {
		t.Fatal(err)
	}
	if got := Signers(bb); len(got) != 2 {
		t.Errorf("signers %v, want two", got)
	}
	if _, err := Verify(bb, []ed25519.PublicKey{otherPub}); err != nil {
		t.Errorf("second signer not accepted: %v", err)
	}

	// A change after signing, with the sha256 made to match again, breaks
	// the signature.
	end := len(b.Signed)
	tampered := bytes.Clone(signed)
	tampered[end-sha256.Size-100] ^= 1
	sum := sha256.Sum256(tampered[:end-sha256.Size])
	copy(tampered[end-sha256.Size:end], sum[:])
	tb, err := bundle.Decode(tampered)
	if err != nil {
		t.Fatalf("the resealed bundle should decode: %v", err)
	}
	if _, err := Verify(tb, []ed25519.PublicKey{pub}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed after signing: %v, want ErrBadSignature", err)
	}
}

func TestSignBundleInMemory(t *testing.T) {
	raw := defaultBytes(t)
	pub, priv, _ := keyPair(t, "desk")
	b, err := bundle.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	b.Signatures = [][]byte{[]byte("a block of another kind")}
	if err := Bundle(b, priv); err != nil {
		t.Fatal(err)
	}
	out, err := bundle.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	back, err := bundle.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Signatures) != 2 {
		t.Errorf("%d signature blocks, want the foreign one and ours", len(back.Signatures))
	}
	if _, err := Verify(back, []ed25519.PublicKey{pub}); err != nil {
		t.Errorf("in-memory signature: %v", err)
	}
}
