package main

import (
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/maskwatch/maskwatch/train/fixture"
)

// pageState is what pageScript reports.
type pageState struct {
	Error    string `json:"error"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Changes  int    `json:"changes"`
	Frames   string `json:"frames"`
	NoSignal bool   `json:"nosignal"`
	Events   int    `json:"events"`
	Model    string `json:"model"`
}

// pageScript waits for the stream's first frame, then draws the <img> into a
// canvas until its pixels have changed three times (a moving stream) and an
// event has been listed.
const pageScript = `(async () => {
  const img = document.getElementById("stream");
  const deadline = Date.now() + 120000;
  const tick = () => new Promise(r => setTimeout(r, 50));
  while (img.naturalWidth === 0) {
    if (Date.now() > deadline) return {error: "the stream showed no frame"};
    await tick();
  }
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext("2d");
  const hash = () => {
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let h = 0;
    for (let i = 0; i < d.length; i += 61) h = (h * 31 + d[i]) >>> 0;
    return h;
  };
  let last = hash(), changes = 0;
  const events = () => document.getElementById("events").children.length;
  while ((changes < 3 || events() === 0) && Date.now() < deadline) {
    await tick();
    const h = hash();
    if (h !== last) { changes++; last = h; }
  }
  return {
    width: img.naturalWidth, height: img.naturalHeight, changes: changes,
    frames: document.getElementById("frames").textContent,
    nosignal: document.getElementById("nosignal").classList.contains("on"),
    events: events(),
    model: document.getElementById("model").textContent,
  };
})()`

// TestE2EPageInChromium opens the page in headless Chromium while maskwatch
// runs on demo.mp4: the stream moves, the counts fill in, events are listed.
func TestE2EPageInChromium(t *testing.T) {
	l := startLive(t, "--source", fixture.Path(t, "video", "demo.mp4"), "--headless",
		"--listen", "127.0.0.1:0")

	browser := fixture.Browser(t, 3*time.Minute)
	if err := chromedp.Do(browser, chromedp.Navigate(l.url+"/")); err != nil {
		t.Fatalf("open the page in headless Chromium: %v", err)
	}
	got, err := chromedp.Run(browser,
		chromedp.Evaluate[pageState](pageScript, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("page script: %v", err)
	}
	if got.Error != "" {
		t.Fatal(got.Error)
	}
	if got.Width != 640 || got.Height != 480 {
		t.Errorf("stream %dx%d in the page, want 640x480", got.Width, got.Height)
	}
	if got.Changes < 3 {
		t.Errorf("the stream changed %d times: not moving", got.Changes)
	}
	if n, err := strconv.Atoi(got.Frames); err != nil || n < 1 {
		t.Errorf("frames shown as %q", got.Frames)
	}
	if got.NoSignal {
		t.Error("the page shows no signal while the source delivers")
	}
	if got.Events == 0 {
		t.Error("no event listed on the page")
	}
	if got.Model == "" {
		t.Error("no model shown on the page")
	}
}
