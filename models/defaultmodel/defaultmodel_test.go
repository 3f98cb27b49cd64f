package defaultmodel

import (
	"errors"
	"testing"
)

// The default model, when the build carries one, is a valid bundle with
// float weights (the GoMLX engine and fine-tuning need them); a build
// without one says so with ErrMissing.
func TestLoad(t *testing.T) {
	b, err := Load()
	if errors.Is(err, ErrMissing) {
		if _, err := Bytes(); !errors.Is(err, ErrMissing) {
			t.Errorf("Bytes: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if b.Weights == nil || len(b.Meta.Classes) == 0 {
		t.Errorf("default model: %d weights, classes %v", len(b.Weights), b.Meta.Classes)
	}
	t.Logf("default model %s: %s %s, from %s epoch %d", b.ShortVersion(), b.Meta.Backbone,
		b.Meta.Precision, b.Meta.Source.Checkpoint, b.Meta.Source.Epoch)
}
