package deploy

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/bundle/sign"
)

// Stages name where a deployment stopped, in the order they run.
const (
	StageRequest   = "request"    // no body, or a malformed header
	StageBusy      = "busy"       // another deployment is under way
	StageSize      = "size"       // over the size limit
	StageSHA256    = "sha256"     // damaged in transit or after export
	StageFormat    = "format"     // not a bundle, or not a usable one
	StageVersion   = "version"    // a bundle format this build does not read
	StageSignature = "signature"  // unsigned, or not by a trusted key
	StageWrite     = "write"      // the file could not be written
	StageLoad      = "load"       // the engine could not load it
	StageSelfCheck = "self-check" // it did not run properly on the stored frames
	StageServing   = "serving"    // detection failed once it was swapped in
)

// Refusal is why a bundle was not taken: the stage, the HTTP status that
// reports it, and the reason.
type Refusal struct {
	Stage string
	Code  int
	Err   error
}

// Error says the stage and the reason.
func (r *Refusal) Error() string { return r.Stage + ": " + r.Err.Error() }

// Unwrap returns the reason.
func (r *Refusal) Unwrap() error { return r.Err }

func refuse(stage string, code int, err error) *Refusal {
	return &Refusal{Stage: stage, Code: code, Err: err}
}

// Loader reads bundle files as this device accepts them: checked whole
// (sha256, format version, contents), signed by a trusted key when Trust is
// set, and opened on the device's engine.
type Loader struct {
	// Trust lists the keys a bundle must be signed by; empty accepts
	// unsigned bundles.
	Trust []ed25519.PublicKey
	// Open runs a checked bundle on the device's engine (detect.OpenBundle
	// with the device's options).
	Open func(b *bundle.Bundle, path string) (detect.Detector, error)
}

// Check decodes and checks a bundle file's bytes. declared, when not
// empty, is the sha256 (hex) the sender computed over data. It returns the
// bundle and the fingerprint of the key that signed it ("" when Trust is
// empty). A bundle refused for its signature is returned too, to say
// which one was refused.
func (l Loader) Check(data []byte, declared string) (*bundle.Bundle, string, *Refusal) {
	if len(data) == 0 {
		return nil, "", refuse(StageRequest, http.StatusBadRequest,
			errors.New("empty upload: send the bundle file as the request body"))
	}
	if declared != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, declared) {
			return nil, "", refuse(StageSHA256, http.StatusUnprocessableEntity,
				fmt.Errorf("received %d bytes with sha256 %s, the sender declared %s: the "+
					"upload was damaged in transit; send it again", len(data), got[:16],
					shorten(declared)))
		}
	}
	b, err := bundle.Decode(data)
	switch {
	case errors.Is(err, bundle.ErrChecksum):
		return nil, "", refuse(StageSHA256, http.StatusUnprocessableEntity, err)
	case errors.Is(err, bundle.ErrVersion):
		return nil, "", refuse(StageVersion, http.StatusUnprocessableEntity, err)
	case err != nil:
		return nil, "", refuse(StageFormat, http.StatusUnprocessableEntity, err)
	}
	if len(l.Trust) == 0 {
		return b, "", nil
	}
	signer, err := sign.Verify(b, l.Trust)
	if err != nil {
		return b, "", refuse(StageSignature, http.StatusForbidden, err)
	}
	return b, signer, nil
}

func shorten(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

// OpenFile reads, checks and opens the bundle file at path: the watcher's
// opener.
func (l Loader) OpenFile(path string) (detect.Detector, error) {
	d, _, err := l.openFile(path)
	return d, err
}

func (l Loader) openFile(path string) (detect.Detector, *bundle.Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("model: %w", err)
	}
	b, _, refusal := l.Check(data, "")
	if refusal != nil {
		return nil, nil, fmt.Errorf("model %s: %w", path, refusal)
	}
	d, err := l.Open(b, path)
	if err != nil {
		return nil, nil, fmt.Errorf("model %s: %w", path, err)
	}
	return d, b, nil
}

// signerOf is the fingerprint of the trusted key that signed b, or "".
func (l Loader) signerOf(b *bundle.Bundle) string {
	if len(l.Trust) == 0 {
		return ""
	}
	fp, err := sign.Verify(b, l.Trust)
	if err != nil {
		return ""
	}
	return fp
}

func fingerprints(keys []ed25519.PublicKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = sign.Fingerprint(k)
	}
	return out
}
