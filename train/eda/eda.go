// Package eda explores face-mask data sets before training: it counts images,
// faces and labels per directory, describes box sizes and shapes, draws sample
// images with their boxes, and writes it all as one offline HTML report.
package eda

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/maskwatch/maskwatch/train/dataset"
	"github.com/maskwatch/maskwatch/train/progress"
)

// Config is one report: which directories to read, how, and what to write.
type Config struct {
	// Data lists data set directories; each is read with dataset.OpenTree, so a
	// folder of splits (proper-mask holds test and train) gives one set a split.
	Data []string
	// Out is the folder the report is written into; it is created if missing.
	Out string
	// Read tunes the readers; its Progress is replaced when ProgressTo is set.
	Read dataset.Options
	// Samples is the number of sample images drawn a directory; 0 draws none.
	Samples int
	// JSON also writes summary.json.
	JSON bool
	// ProgressTo receives progress bars while reading and drawing; nil draws none.
	ProgressTo io.Writer
}

// Run reads every directory of cfg.Data, summarises the sets and writes the
// report into cfg.Out. It returns the summary that the report shows.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if len(cfg.Data) == 0 {
		return nil, errors.New("no data set directory given: name at least one")
	}
	if cfg.Out == "" {
		return nil, errors.New("no output folder given: name the folder for the report")
	}

	sets, err := Read(ctx, cfg.Data, cfg.Read, cfg.ProgressTo)
	if err != nil {
		return nil, err
	}
	s := Summarize(sets)
	err = WriteReport(ctx, cfg.Out, sets, s, WriteOptions{
		Samples:    cfg.Samples,
		JSON:       cfg.JSON,
		ProgressTo: cfg.ProgressTo,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Read opens the data sets at or just below each of dirs (see dataset.OpenTree),
// in order. A directory named twice, directly or through its parent, is read
// once. When progressTo is set, a bar a set shows the images checked.
//
// The readers take no context: when ctx ends during a read, Read returns
// ctx.Err() at once and the read finishes, unobserved, in the background.
func Read(
	ctx context.Context, dirs []string, opt dataset.Options, progressTo io.Writer,
) ([]*dataset.Set, error) {
	var sets []*dataset.Set
	seen := map[string]bool{}
	for _, dir := range dirs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		bars := &readBars{w: progressTo, label: "read " + filepath.Base(dir)}
		if progressTo != nil {
			opt.Progress = bars.update
		}
		got, err := openTree(ctx, dir, opt)
		bars.finish()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", dir, err)
		}

		for _, set := range got {
			key := set.Dir
			if abs, err := filepath.Abs(set.Dir); err == nil {
				key = abs
			}
			if !seen[key] {
				seen[key] = true
				sets = append(sets, set)
			}
		}
	}
	return sets, nil
}

// openTree runs dataset.OpenTree, returning early if ctx ends first.
func openTree(ctx context.Context, dir string, opt dataset.Options) ([]*dataset.Set, error) {
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no such directory: check the path")
		}
		return nil, err
	}

	type result struct {
		sets []*dataset.Set
		err  error
	}
	done := make(chan result, 1)
	go func() {
		sets, err := dataset.OpenTree(dir, opt)
		done <- result{sets, err}
	}()
	select {
	case r := <-done:
		return r.sets, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// readBars shows a reader's progress callbacks as bars, starting a new bar
// whenever the total changes or the count starts again: one bar a set read.
type readBars struct {
	mu     sync.Mutex
	w      io.Writer
	label  string
	bar    *progress.Bar
	total  int
	done   int
	n      int
	closed bool
}

func (r *readBars) update(done, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.w == nil {
		return
	}
	if r.bar == nil || total != r.total || done < r.done {
		if r.bar != nil {
			r.bar.Finish()
		}
		r.n++
		label := r.label
		if r.n > 1 {
			label = fmt.Sprintf("%s (%d)", r.label, r.n)
		}
		r.bar = progress.New(r.w, label, total, "img")
		r.total = total
	}
	r.done = done
	r.bar.Set(done)
}

// finish ends the current bar; later callbacks draw nothing.
func (r *readBars) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.bar != nil {
		r.bar.Finish()
	}
}
