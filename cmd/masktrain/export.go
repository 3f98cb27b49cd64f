package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // calibration photographs
	_ "image/png"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/spf13/pflag"

	"github.com/maskwatch/maskwatch/edge/detect"
	"github.com/maskwatch/maskwatch/models/backend"
	"github.com/maskwatch/maskwatch/models/bundle"
	"github.com/maskwatch/maskwatch/models/defaultmodel"
	"github.com/maskwatch/maskwatch/models/export"
	"github.com/maskwatch/maskwatch/models/frcnn"
	"github.com/maskwatch/maskwatch/models/input"
	"github.com/maskwatch/maskwatch/models/net"
	"github.com/maskwatch/maskwatch/models/tflite"
	"github.com/maskwatch/maskwatch/train/progress"
)

const exportUsage = `Usage: masktrain export --model CHECKPOINT --precision fp32|fp16|int8 --out FILE
                        [--calib DIR --calib-images N] [flags]

Writes a model bundle (.mwb): the detector's two stages as TFLite graphs of
the precision asked, with the metadata and float weights the edge needs, and
a sha256 over the file. fp16 stores weights as half floats; int8 is full
integer, its activation ranges measured by running the float model on
--calib-images photographs of --calib. --model is a checkpoint of masktrain
train, or a bundle with float weights ("default": the built-in model), to
export again at another precision.
`

type exportOptions struct {
	model, precision, out, weights string
	calibMethod                    string
	calib                          []string
	calibImages, maxSide           int
	json                           bool
	sign                           string
}

func exportFlags() (*pflag.FlagSet, *exportOptions) {
	o := &exportOptions{}
	fs := pflag.NewFlagSet("export", pflag.ContinueOnError)
	fs.StringVar(&o.model, "model", "", "checkpoint `PATH` (or a bundle, or default)")
	fs.StringVar(&o.precision, "precision", "int8", "`PRECISION`: fp32, fp16 or int8")
	fs.StringArrayVar(&o.calib, "calib", nil, "`DIR` of photographs for int8 calibration "+
		"(searched recursively for .jpg and .png); repeat for more")
	fs.IntVar(&o.calibImages, "calib-images", 200, "`N` calibration photographs, evenly "+
		"spread over --calib")
	fs.StringVar(&o.calibMethod, "calib-method", string(tflite.DefaultMethod), "how the "+
		"images' ranges pool: minmax, mean or percentile:`P`")
	fs.StringVar(&o.out, "out", "", "bundle `FILE` to write (.mwb)")
	fs.StringVar(&o.weights, "weights", "", "float weights carried: `TYPE` float32, float16 "+
		"or none (default: float32 for fp32, float16 otherwise)")
	fs.IntVar(&o.maxSide, "max-side", input.DefaultMaxSide, "frames larger than `N` px are "+
		"shrunk to it on their longer side")
	fs.BoolVar(&o.json, "json", false, "print one JSON line describing the bundle")
	fs.StringVar(&o.sign, "sign", "", "sign the bundle with the ed25519 private `KEY` "+
		"(masktrain keygen); devices started with --trust accept only signed bundles")
	return fs, o
}

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := exportFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printCommandUsage(stdout, fs, exportUsage)
			return exitOK
		}
		return commandUsageError(stderr, "export", err)
	}
	precision, err := tflite.ParsePrecision(o.precision)
	method, merr := tflite.ParseMethod(o.calibMethod)
	switch {
	case merr != nil:
		err = fmt.Errorf("--calib-method: %w", merr)
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case err != nil:
		err = fmt.Errorf("--precision: %w", err)
	case o.model == "":
		err = errors.New("no --model given: name a checkpoint such as " +
			"runs/mobilenetv3/best.ckpt")
	case o.out == "":
		err = errors.New("no --out given: name the bundle file, such as model.mwb")
	case precision == tflite.INT8 && len(o.calib) == 0:
		err = errors.New("int8 needs --calib DIR: a folder of real photographs such as " +
			"../shared/data/proper-mask/train")
	case o.calibImages < 1:
		err = fmt.Errorf("--calib-images %d: give 1 or more", o.calibImages)
	case o.maxSide < 32:
		err = fmt.Errorf("--max-side %d: give 32 or more", o.maxSide)
	}
	if err != nil {
		return commandUsageError(stderr, "export", err)
	}
	signKey, err := readSignKey(o.sign)
	if err != nil {
		return commandUsageError(stderr, "export", fmt.Errorf("--sign: %w", err))
	}
	var calib []string
	if precision == tflite.INT8 {
		if calib, err = calibrationImages(o.calib, o.calibImages); err != nil {
			return commandUsageError(stderr, "export", fmt.Errorf("--calib: %w", err))
		}
	}

	start := time.Now()
	be, err := backend.New("")
	if err != nil {
		slog.Error("export: backend", "err", err)
		return exitFailed
	}
	cfg, w, source, err := loadForExport(o.model, be)
	if err != nil {
		slog.Error("export: cannot load --model", "err", err)
		return exitFailed
	}
	slog.Info("export: start", "model", o.model, "backbone", cfg.Backbone,
		"precision", precision, "calibration_images", len(calib))
	opt := export.Options{Precision: precision, MaxSide: o.maxSide, WeightsType: o.weights,
		Source: source, Exporter: programName + " " + version, Backend: be}
	if len(calib) > 0 {
		bar := progress.New(stderr, "calibrate", len(calib), "img")
		next := 0
		opt.Calibration = func() (input.Source, bool, error) {
			if next == len(calib) {
				return input.Source{}, false, nil
			}
			next++
			src, err := readSource(calib[next-1])
			return src, err == nil, err
		}
		opt.CalibrationImages = len(calib)
		opt.CalibrationSource = strings.Join(o.calib, ", ")
		opt.CalibrationMethod = method
		opt.Progress = func(done int) { bar.Set(done) }
		defer bar.Finish()
	}
	b, err := export.FromWeights(ctx, cfg, w, opt)
	if err != nil {
		slog.Error("export: failed", "err", err, "seconds", secondsSince(start))
		return exitFailed
	}
	if err := signBundle(b, signKey); err != nil {
		slog.Error("export: failed", "err", err)
		return exitFailed
	}
	if err := bundle.Write(o.out, b); err != nil {
		slog.Error("export: failed", "err", err)
		return exitFailed
	}
	info, err := os.Stat(o.out)
	if err != nil {
		slog.Error("export: failed", "err", err)
		return exitFailed
	}
	summary := map[string]any{"bundle": o.out, "bytes": info.Size(),
		"sha256": hex.EncodeToString(b.Digest[:]), "precision": precision,
		"backbone": cfg.Backbone, "stage1_bytes": len(b.Stage1), "stage2_bytes": len(b.Stage2),
		"weights": b.Meta.WeightsType, "calibration_images": len(calib)}
	if o.json {
		line, _ := json.Marshal(summary)
		fmt.Fprintf(stdout, "%s\n", line)
	} else {
		fmt.Fprintf(stdout, "%s: %s %s bundle, %.1f MB (stage 1 %.1f MB, stage 2 %.1f MB, "+
			"weights %s), sha256 %s\n", o.out, cfg.Backbone, precision,
			float64(info.Size())/1e6, float64(len(b.Stage1))/1e6, float64(len(b.Stage2))/1e6,
			orNone(b.Meta.WeightsType), hex.EncodeToString(b.Digest[:]))
	}
	slog.Info("export: done", "out", o.out, "bytes", info.Size(),
		"seconds", secondsSince(start))
	return exitOK
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// loadForExport reads a checkpoint, or a bundle's float weights, as a
// config and weights, and says where they came from.
func loadForExport(path string, be backends.Backend) (frcnn.Config, net.Weights,
	bundle.Source, error) {
	var raw []byte
	var err error
	if path == "default" {
		raw, err = defaultmodel.Bytes()
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return frcnn.Config{}, nil, bundle.Source{}, err
	}
	if bytes.HasPrefix(raw, []byte(bundle.Magic)) {
		b, err := bundle.Decode(raw)
		if err != nil {
			return frcnn.Config{}, nil, bundle.Source{}, fmt.Errorf("%s: %w", path, err)
		}
		if b.Weights == nil {
			return frcnn.Config{}, nil, bundle.Source{}, fmt.Errorf("%s: the bundle carries "+
				"no float weights to export from; export its checkpoint instead", path)
		}
		// The source stays the checkpoint the weights were trained in.
		return b.Meta.Model, b.Weights, b.Meta.Source, nil
	}
	sum := sha256.Sum256(raw)
	m, meta, err := frcnn.Decode(raw, path, be)
	if err != nil {
		return frcnn.Config{}, nil, bundle.Source{}, err
	}
	scope := m.Ctx.In(frcnn.Scope)
	w, err := m.Stage1.Weights(scope)
	if err != nil {
		return frcnn.Config{}, nil, bundle.Source{}, err
	}
	w2, err := m.Stage2.Weights(scope)
	if err != nil {
		return frcnn.Config{}, nil, bundle.Source{}, err
	}
	maps.Copy(w, w2)
	return m.Config, w, bundle.Source{Checkpoint: filepath.Base(path),
		SHA256: hex.EncodeToString(sum[:]), Epoch: meta.Epoch, Metrics: meta.Values}, nil
}

// calibrationImages lists the photographs under dirs (.jpg, .jpeg, .png, in
// any case), sorted, and picks n of them evenly spread.
func calibrationImages(dirs []string, n int) ([]string, error) {
	var all []string
	for _, dir := range dirs {
		before := len(all)
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".jpg", ".jpeg", ".png":
				if !d.IsDir() {
					all = append(all, path)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(all) == before {
			return nil, fmt.Errorf("%s holds no .jpg or .png photographs", dir)
		}
	}
	sort.Strings(all)
	if len(all) <= n {
		return all, nil
	}
	picked := make([]string, n)
	for i := range n {
		picked[i] = all[i*len(all)/n]
	}
	return picked, nil
}

// readSource decodes a photograph into BGR pixels, as a camera gives them.
func readSource(path string) (input.Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return input.Source{}, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return input.Source{}, fmt.Errorf("%s: %w", path, err)
	}
	frame, _ := detect.FrameFromImage(img, nil)
	return input.Source{Pix: frame.Pix, Width: frame.Width, Height: frame.Height,
		Stride: frame.Stride, BGR: true}, nil
}
