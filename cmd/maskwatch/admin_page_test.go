package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/maskwatch/maskwatch/edge/finetune"
	"github.com/maskwatch/maskwatch/train/fixture"
)

// adminState is what adminScript reports.
type adminState struct {
	Error     string `json:"error"`
	Label     string `json:"label"`
	Faces     int    `json:"faces"`
	Drawn     int    `json:"drawn"`
	Painted   bool   `json:"painted"`
	Collect   string `json:"collect"`
	Model     string `json:"model"`
	PageError string `json:"pageError"`
}

// adminScript uses the admin page as an operator would: types the token,
// keeps the live frame as a mistake, draws a missed face on it, saves the
// labels.
const adminScript = `(async (token) => {
  const $ = (id) => document.getElementById(id);
  const deadline = Date.now() + 120000;
  const tick = () => new Promise(r => setTimeout(r, 50));
  const until = async (what, f) => {
    while (!f()) {
      if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
      await tick();
    }
  };
  try {
    $("token").value = token;
    $("use-token").click();
    await until("the model", () => $("model").textContent.startsWith("running"));
    $("flag").click();
    await until("a frame to label", () => $("label-info").textContent.includes(":"));
    await until("its picture", () => $("picture").width > 0);
    const faces = $("faces").rows.length;
    const c = $("picture"), r = c.getBoundingClientRect();
    const at = (type, x, y) => c.dispatchEvent(new MouseEvent(type, {bubbles: true,
      clientX: r.left + x * r.width / c.width, clientY: r.top + y * r.height / c.height}));
    at("mousedown", 20, 20); at("mousemove", 90, 100); at("mouseup", 90, 100);
    const drawn = $("faces").rows.length;
    const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let painted = false;
    for (let i = 0; i < px.length; i += 4) if (px[i] + px[i+1] + px[i+2] > 0) painted = true;
    $("save").click();
    await until("the labels saved", () => /[1-9]\d* labelled/.test($("collect").textContent));
    return {label: $("label-info").textContent, faces, drawn, painted,
      collect: $("collect").textContent, model: $("model").textContent,
      pageError: $("error").textContent};
  } catch (e) {
    return {error: String(e), pageError: $("error").textContent};
  }
})`

// TestE2EAdminPageInChromium: the admin page, in headless Chromium, keeps a
// frame the operator flags, lets them draw a missed face on it and saves
// the labels as a Pascal VOC annotation.
func TestE2EAdminPageInChromium(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "model.mwb")
	weakenedBundle(t, model)
	collect := filepath.Join(dir, "collect")
	l := startLive(t, "--source", fixture.Path(t, "video", "demo.mp4"), "--headless",
		"--listen", "127.0.0.1:0", "--model", model, "--admin-token", deployToken,
		"--collect", collect)

	browser := fixture.Browser(t, 3*time.Minute)
	if err := chromedp.Do(browser, chromedp.Navigate(l.url+"/admin")); err != nil {
		t.Fatalf("open the admin page: %v", err)
	}
	got, err := chromedp.Run(browser, chromedp.Evaluate[adminState](
		adminScript+`("`+deployToken+`")`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("admin script: %v", err)
	}
	if got.Error != "" {
		t.Fatalf("%s (page error %q)", got.Error, got.PageError)
	}
	t.Logf("page: %+v", got)
	if got.Drawn != got.Faces+1 || !got.Painted {
		t.Errorf("faces %d, %d after drawing one; picture painted %v", got.Faces, got.Drawn,
			got.Painted)
	}
	if !strings.Contains(got.Model, "running") {
		t.Errorf("model line %q", got.Model)
	}
	if n := finetune.Labelled(collect); n != 1 {
		t.Fatalf("%d labelled frames on disk, want 1", n)
	}
	ann, _ := filepath.Glob(filepath.Join(finetune.LabelledDir(collect), "annotations", "*.xml"))
	raw, _ := os.ReadFile(ann[0])
	if strings.Count(string(raw), "<object>") != got.Drawn {
		t.Errorf("the annotation holds %d faces, the page had %d:\n%s",
			strings.Count(string(raw), "<object>"), got.Drawn, raw)
	}
}
