// Package history keeps a training run's per-epoch metrics as JSON lines, one
// epoch a line, appended durably as each epoch ends, and draws them as PNG
// curves of the losses, the accuracy and the IoU.
package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/maskwatch/maskwatch/models/safefile"
)

// Losses are the Faster R-CNN losses of one epoch, each the mean over its
// batches. A loss that was not measured is NaN.
type Losses struct {
	RPNObjectness float64 `json:"rpn_objectness"` // the RPN's anchor objectness
	RPNBox        float64 `json:"rpn_box"`        // the RPN's anchor box regression
	RoIClass      float64 `json:"roi_class"`      // the head's RoI classification
	RoIBox        float64 `json:"roi_box"`        // the head's RoI box regression
	Total         float64 `json:"total"`          // the loss optimised, regularisation included
}

// NoLosses returns Losses that are all NaN: an epoch without validation.
func NoLosses() Losses {
	nan := math.NaN()
	return Losses{RPNObjectness: nan, RPNBox: nan, RoIClass: nan, RoIBox: nan, Total: nan}
}

// Epoch is what one training epoch measured. A figure that was not measured
// (no validation set, say) is NaN; it is written as null and read back as
// NaN, as is a figure a line leaves out. ±Inf is written as null too, so a
// diverged loss reads back as NaN.
type Epoch struct {
	Epoch           int     `json:"epoch"`             // 1 for the first epoch
	Step            int64   `json:"step"`              // optimizer steps taken by the epoch's end
	Seconds         float64 `json:"seconds"`           // wall time, validation included
	ImagesPerSecond float64 `json:"images_per_second"` // training images a second
	LR              float64 `json:"lr"`                // learning rate at the epoch's end

	Train Losses `json:"train"`
	Val   Losses `json:"val"`

	TrainAccuracy float64 `json:"train_accuracy"` // the study's accuracy on training images
	TrainIoU      float64 `json:"train_iou"`      // the study's IoU on training images
	ValAccuracy   float64 `json:"val_accuracy"`
	ValIoU        float64 `json:"val_iou"`
	ValMAP50      float64 `json:"val_map50"` // mAP at IoU 0.5 on validation images
}

// number is a float64 that JSON writes as null when it is NaN or ±Inf, and
// that null reads back as NaN.
type number float64

// MarshalJSON writes the number, or null when it is not finite.
func (n number) MarshalJSON() ([]byte, error) {
	v := float64(n)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON reads a number, or null as NaN.
func (n *number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = number(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", b)
	}
	*n = number(v)
	return nil
}

// lossesLine and epochLine are Losses and Epoch as a line holds them.
type lossesLine struct {
	RPNObjectness number `json:"rpn_objectness"`
	RPNBox        number `json:"rpn_box"`
	RoIClass      number `json:"roi_class"`
	RoIBox        number `json:"roi_box"`
	Total         number `json:"total"`
}

type epochLine struct {
	Epoch           int        `json:"epoch"`
	Step            int64      `json:"step"`
	Seconds         number     `json:"seconds"`
	ImagesPerSecond number     `json:"images_per_second"`
	LR              number     `json:"lr"`
	Train           lossesLine `json:"train"`
	Val             lossesLine `json:"val"`
	TrainAccuracy   number     `json:"train_accuracy"`
	TrainIoU        number     `json:"train_iou"`
	ValAccuracy     number     `json:"val_accuracy"`
	ValIoU          number     `json:"val_iou"`
	ValMAP50        number     `json:"val_map50"`
}

func toLine(l Losses) lossesLine {
	return lossesLine{number(l.RPNObjectness), number(l.RPNBox), number(l.RoIClass),
		number(l.RoIBox), number(l.Total)}
}

func fromLine(l lossesLine) Losses {
	return Losses{float64(l.RPNObjectness), float64(l.RPNBox), float64(l.RoIClass),
		float64(l.RoIBox), float64(l.Total)}
}

// MarshalJSON writes the epoch with its NaN and ±Inf figures as null.
func (e Epoch) MarshalJSON() ([]byte, error) {
	return json.Marshal(epochLine{
		Epoch: e.Epoch, Step: e.Step, Seconds: number(e.Seconds),
		ImagesPerSecond: number(e.ImagesPerSecond), LR: number(e.LR),
		Train: toLine(e.Train), Val: toLine(e.Val),
		TrainAccuracy: number(e.TrainAccuracy), TrainIoU: number(e.TrainIoU),
		ValAccuracy: number(e.ValAccuracy), ValIoU: number(e.ValIoU),
		ValMAP50: number(e.ValMAP50),
	})
}

// UnmarshalJSON reads an epoch; null and absent figures read as NaN.
func (e *Epoch) UnmarshalJSON(b []byte) error {
	nan := number(math.NaN())
	noLosses := lossesLine{nan, nan, nan, nan, nan}
	l := epochLine{
		Seconds: nan, ImagesPerSecond: nan, LR: nan, Train: noLosses, Val: noLosses,
		TrainAccuracy: nan, TrainIoU: nan, ValAccuracy: nan, ValIoU: nan, ValMAP50: nan,
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*e = Epoch{
		Epoch: l.Epoch, Step: l.Step, Seconds: float64(l.Seconds),
		ImagesPerSecond: float64(l.ImagesPerSecond), LR: float64(l.LR),
		Train: fromLine(l.Train), Val: fromLine(l.Val),
		TrainAccuracy: float64(l.TrainAccuracy), TrainIoU: float64(l.TrainIoU),
		ValAccuracy: float64(l.ValAccuracy), ValIoU: float64(l.ValIoU),
		ValMAP50: float64(l.ValMAP50),
	}
	return nil
}

// Append adds e as one line at the end of the log at path, creating the file
// if needed, and syncs it to disk before returning, so that the epoch
// survives a crash right after. A torn last line that an earlier crash left
// (bytes after the last newline) is cut off first, with a warning, so that
// it does not run into the new line. Append does not check the epoch's
// number against the lines before it.
func Append(path string, e Epoch) (err error) {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("history: encode epoch %d: %w", e.Epoch, err)
	}
	line = append(line, '\n')

	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("history: %w", cerr)
		}
	}()

	end, err := completeEnd(f)
	if err != nil {
		return fmt.Errorf("history: %s: %w", path, err)
	}
	if size, _ := f.Seek(0, io.SeekEnd); size != end {
		slog.Warn("history: cutting off a torn last line", "path", path, "bytes", size-end)
		if err := f.Truncate(end); err != nil {
			return fmt.Errorf("history: %s: cut torn line: %w", path, err)
		}
	}
	if _, err := f.WriteAt(line, end); err != nil {
		return fmt.Errorf("history: %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("history: %s: %w", path, err)
	}
	if created {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

// completeEnd returns the offset just past the last newline of f, 0 when it
// has none.
func completeEnd(f *os.File) (int64, error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 4096)
	for pos := size; pos > 0; {
		n := min(int64(len(buf)), pos)
		pos -= n
		if _, err := f.ReadAt(buf[:n], pos); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return pos + int64(i) + 1, nil
		}
	}
	return 0, nil
}

// Read returns the epochs of the log at path in the order they were written.
// A last line that does not parse, as a crash while appending leaves, is
// ignored and logged as a warning; a bad line before the last is an error
// that names its line number. Blank lines are skipped. A missing file is an
// error wrapping fs.ErrNotExist.
func Read(path string) ([]Epoch, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, err
	}
	epochs := make([]Epoch, 0, len(lines))
	for _, l := range lines {
		epochs = append(epochs, l.epoch)
	}
	return epochs, nil
}

// line is one parsed line of a log and its bytes as written.
type line struct {
	raw   []byte
	epoch Epoch
}

// readLines reads and parses every line of the log at path, as Read does.
func readLines(path string) ([]line, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	raws := bytes.Split(data, []byte{'\n'})
	last := len(raws) - 1
	for last >= 0 && len(bytes.TrimSpace(raws[last])) == 0 {
		last--
	}

	var lines []line
	for i, raw := range raws[:last+1] {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		var e Epoch
		if err := json.Unmarshal(raw, &e); err != nil {
			if i == last {
				slog.Warn("history: ignoring a torn last line", "path", path, "line", i+1,
					"bytes", len(raw), "err", err)
				break
			}
			return nil, fmt.Errorf("history: %s line %d: %w", path, i+1, err)
		}
		lines = append(lines, line{raw: raw, epoch: e})
	}
	return lines, nil
}

// Truncate keeps the lines of the log at path whose epoch is at most
// lastEpoch, as written, and drops the rest and any torn last line: what a
// run resumed from the checkpoint of lastEpoch needs before it appends again.
// The file is replaced atomically; a missing file is left missing.
func Truncate(path string, lastEpoch int) error {
	lines, err := readLines(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, l := range lines {
		if l.epoch.Epoch <= lastEpoch {
			buf.Write(l.raw)
			buf.WriteByte('\n')
		}
	}
	return safefile.Write(path, buf.Bytes(), 0o644)
}

// syncDir syncs a folder, so that a file created or renamed in it stays.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("history: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("history: sync %s: %w", dir, err)
	}
	return nil
}
