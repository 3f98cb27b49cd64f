package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestLineShowsRateAndETA(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, "eda", 100, "img")
	clock := b.start
	b.now = func() time.Time { return clock }

	clock = clock.Add(10 * time.Second)
	b.Set(25)
	got := out.String()
	for _, want := range []string{"eda [", "25/100", " 25%", "2.5 img/s", "ETA 30s"} {
		if !strings.Contains(got, want) {
			t.Errorf("line %q lacks %q", got, want)
		}
	}

	clock = clock.Add(30 * time.Second)
	b.Set(100)
	b.Finish()
	if !strings.Contains(out.String(), "100/100 100%") ||
		!strings.Contains(out.String(), "done in 40s") {
		t.Errorf("final line wrong: %q", out.String())
	}
}

func TestNonTerminalThrottlesLines(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, "x", 1000, "img")
	clock := b.start
	b.now = func() time.Time { return clock }
	for i := 1; i < 1000; i++ {
		clock = clock.Add(10 * time.Millisecond)
		b.Set(i)
	}
	b.Finish()
	lines := strings.Count(out.String(), "\n")
	// 10 s of work at one line per 5 s, plus the final line.
	if lines < 2 || lines > 4 {
		t.Errorf("got %d lines, want about 3:\n%s", lines, out.String())
	}
}

func TestFinishDoesNotRepeatTheLastLine(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, "x", 3, "img")
	b.Set(3) // reaching the total always draws
	b.Finish()
	b.Finish()
	if n := strings.Count(out.String(), "3/3"); n != 1 {
		t.Errorf("final state written %d times, want once:\n%s", n, out.String())
	}

	out.Reset()
	b = New(&out, "y", 3, "img")
	clock := b.start
	b.now = func() time.Time { return clock }
	b.Set(1) // drawn: the first line is due at once
	clock = clock.Add(time.Second)
	b.Set(2) // throttled
	b.Finish()
	if !strings.Contains(out.String(), "2/3") {
		t.Errorf("Finish dropped the state not yet drawn:\n%s", out.String())
	}
}
