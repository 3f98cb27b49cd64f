package finetune

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/defaultmodel"
	"github.com/maskwatch/maskwatch/models/export"
	"github.com/maskwatch/maskwatch/models/tflite"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// weakened is the default model with its two foreground classes swapped
// in the box head's class layer, exported as fp16: a bundle that finds the
// faces and calls every mask the wrong way round.
func weakened(t testing.TB) *bundle.Bundle {
	t.Helper()
	b, err := defaultmodel.Load()
	if err != nil {
		t.Fatal(err)
	}
	w := b.Weights["head/class/weights"]
	k := w.Shape[1]
	for r := range w.Shape[0] {
		row := w.Values[r*k : (r+1)*k]
		row[1], row[2] = row[2], row[1]
	}
	bias := b.Weights["head/class/bias"].Values
	bias[1], bias[2] = bias[2], bias[1]
	out, err := export.FromWeights(context.Background(), b.Meta.Model, b.Weights,
		export.Options{Precision: tflite.FP16, Exporter: "weakened on purpose"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Encode(out); err != nil {
		t.Fatal(err)
	}
	return out
}

func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// A fine-tune of the box head on proper-mask images brings a head whose
// classes were swapped back: held-out accuracy rises far above the weakened
// model's, the new bundle keeps its precision and is accepted. Stopped in
// the middle, it resumes from the last whole epoch.
func TestFineTuneRecoversAWeakenedHead(t *testing.T) {
	b := weakened(t)
	state := t.TempDir()
	opt := Options{Bundle: b, Data: []string{fixture.Path(t, "proper-mask", "train")},
		MaxSamples: 100, Epochs: 3, State: state, Threads: 2, Log: testLog(t)}

	ctx, cancel := context.WithCancel(context.Background())
	stopped := opt
	stopped.Progress = func(p Progress) {
		if p.Phase == PhaseTraining && p.Epoch == 2 && p.Done == 3 {
			cancel()
		}
	}
	if _, err := Run(ctx, stopped); !errors.Is(err, context.Canceled) {
		t.Fatalf("a fine-tune stopped in epoch 2: %v, want context.Canceled", err)
	}

	var phases []string
	opt.Progress = func(p Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	}
	res, err := Run(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("held-out accuracy %.3f -> %.3f (best epoch %d), %.0f ms/sample, %.0f s",
		res.Baseline.Accuracy, res.Candidate.Accuracy, res.BestEpoch, res.PerSampleMs,
		res.Seconds)
	if res.ResumedFrom != 1 || len(res.Epochs) != 3 {
		t.Errorf("resumed after epoch %d with %d epochs recorded, want after 1 with 3",
			res.ResumedFrom, len(res.Epochs))
	}
	if res.Samples != 80 || res.HeldOut != 20 {
		t.Errorf("%d train and %d held out, want 80 and 20", res.Samples, res.HeldOut)
	}
	if res.Baseline.Accuracy > 0.3 {
		t.Errorf("the weakened model scores %.3f held out: it is not weak", res.Baseline.Accuracy)
	}
	if res.Candidate == nil || res.Candidate.Accuracy < res.Baseline.Accuracy+0.4 {
		t.Fatalf("held-out accuracy %.3f -> %+v: the fine-tune did not recover the head",
			res.Baseline.Accuracy, res.Candidate)
	}
	if !res.Accepted || res.Bundle == nil || res.Bundle.Meta.Precision != "fp16" ||
		res.Bundle.Meta.WeightsType != b.Meta.WeightsType {
		t.Errorf("accepted %v, bundle %v: want an fp16 bundle like the running one",
			res.Accepted, res.Bundle != nil)
	}
	want := []string{PhaseReading, PhaseFeatures, PhaseBaseline, PhaseTraining,
		PhaseExporting, PhaseEvaluating, PhaseDone}
	if len(phases) != len(want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
}
