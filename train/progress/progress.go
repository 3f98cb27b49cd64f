// Package progress draws a progress bar with a rate and an ETA for long work:
// redrawn in place on a terminal, one line every few seconds elsewhere
// (CI logs, files), so that both stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Bar reports progress of a known amount of work. It is safe for concurrent use.
type Bar struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	unit     string
	total    int
	done     int
	start    time.Time
	last     time.Time
	tty      bool
	every    time.Duration
	finished bool
	drawn    int // done at the last line written on a non-terminal; -1 before
	now      func() time.Time
}

// New starts a bar for total items of unit ("img", "batch") written to w.
func New(w io.Writer, label string, total int, unit string) *Bar {
	b := &Bar{w: w, label: label, unit: unit, total: total, drawn: -1, now: time.Now}
	b.tty = isTerminal(w)
	b.every = 5 * time.Second
	if b.tty {
		b.every = 100 * time.Millisecond
	}
	b.start = b.now()
	return b
}

// Add records n more items done.
func (b *Bar) Add(n int) { b.Set(b.Done() + n) }

// Done returns the items done so far.
func (b *Bar) Done() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

// Set records that done items of the total are finished.
func (b *Bar) Set(done int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = done
	now := b.now()
	if now.Sub(b.last) < b.every && done < b.total {
		return
	}
	b.last = now
	b.draw(now)
}

// Finish draws the final state and ends the line.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	if b.tty {
		b.draw(b.now())
		fmt.Fprintln(b.w)
		return
	}
	if b.drawn != b.done { // a log needs no second copy of its last line
		b.draw(b.now())
	}
}

// Line renders the bar's text as it would be drawn now.
func (b *Bar) Line() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.line(b.now())
}

func (b *Bar) draw(now time.Time) {
	if b.tty {
		fmt.Fprintf(b.w, "\r%s\x1b[K", b.line(now))
		return
	}
	b.drawn = b.done
	fmt.Fprintln(b.w, b.line(now))
}

const width = 30

func (b *Bar) line(now time.Time) string {
	frac := 1.0
	if b.total > 0 {
		frac = min(float64(b.done)/float64(b.total), 1)
	}
	filled := int(frac * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)

	elapsed := now.Sub(b.start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(b.done) / s
	}
	eta := "?"
	switch {
	case b.done >= b.total:
		eta = "done in " + round(elapsed).String()
	case rate > 0:
		left := time.Duration(float64(b.total-b.done) / rate * float64(time.Second))
		eta = "ETA " + round(left).String()
	}
	return fmt.Sprintf("%s [%s] %d/%d %3.0f%% %.1f %s/s %s",
		b.label, bar, b.done, b.total, frac*100, rate, b.unit, eta)
}

func round(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
