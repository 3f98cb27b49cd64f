package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/maskwatch/maskwatch/camera"
	"github.com/maskwatch/maskwatch/edge/detect"
)

const runUsage = `Usage: maskwatch run --source SPEC [--model PATH|default] [flags]

Runs face-mask detection live on a source:
  0, /dev/video0             a camera (V4L2)
  clip.mp4                   a video file (loops unless --exit-at-end)
  rtsp://cam/stream          a network camera
  http://cam/video.mjpg      an MJPEG camera (works in the static build)
  'libcamerasrc ! ... ! appsink'   a GStreamer pipeline (CSI cameras)
  -                          an MJPEG stream on stdin (rpicam-vid --codec mjpeg -o -)
  DIR                        a folder of JPEG and PNG images

Outputs: a window (--display window), a full-screen kiosk with a banner for
the nearest face (--kiosk), and, unless --listen off, a web page at --listen
with the live stream, /api/status, /api/events, /metrics and /healthz.

Every flag can be set as MASKWATCH_NAME (--mqtt-url: MASKWATCH_MQTT_URL) or
as "name = value" in the --config file; the command line wins, then the
environment, then the file.
`

// options are the flags of run.
type options struct {
	config string

	source, model     string
	engine, delegate  string
	threads           int
	delegateFallback  bool
	width, height     int
	fps               float64
	pace              string
	exitAtEnd         bool
	maxFrames         int
	display           string
	headless, kiosk   bool
	kioskOK, kioskBad string
	noOverlay         bool
	minScore          float64
	faceOverlap       float64
	blur              bool
	snapshots         string
	snapshotQuota     string
	record            string
	recordFPS         float64
	listen            string
	adminToken        string
	adminTokenFile    string
	maxViewers        int
	maxConns          int
	jpegQuality       int
	mqttURL           string
	mqttTopic         string
	mqttQoS           int
	mqttClientID      string
	webhookURL        string
	webhookToken      string
	device            string
	statsJSON         string
	reloadInterval    time.Duration
	logLevel          string
	dev               deviceOptions
}

func runFlags() (*pflag.FlagSet, *options) {
	o := &options{}
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.StringVar(&o.config, "config", "", "read flags from `FILE` (name = value lines)")

	fs.StringVar(&o.source, "source", "0", "`SPEC`: camera, file, URL, pipeline, - or folder")
	fs.IntVar(&o.width, "width", 0, "ask the camera for this frame `WIDTH`")
	fs.IntVar(&o.height, "height", 0, "ask the camera for this frame `HEIGHT`")
	fs.Float64Var(&o.fps, "fps", 0, "ask the camera for this `RATE`; plays folders at it")
	fs.StringVar(&o.pace, "pace", "auto", "`MODE`: auto, live (newest frame only), native "+
		"(files at their own rate) or all (every frame, for offline runs)")
	fs.BoolVar(&o.exitAtEnd, "exit-at-end", false, "end at the end of a file or folder "+
		"instead of looping")
	fs.IntVar(&o.maxFrames, "max-frames", 0, "end after `N` frames (0: no limit)")

	fs.StringVar(&o.model, "model", "default", "model bundle `PATH`, or default (built in); "+
		"the file is watched and a new valid bundle is swapped in")
	fs.StringVar(&o.engine, "engine", defaultEngine, "`ENGINE`: tflite (builds with cgo), or "+
		"gomlx (pure Go, runs the bundle's float weights)")
	fs.IntVar(&o.threads, "threads", 0, "inference threads `N` (0: every core)")
	fs.StringVar(&o.delegate, "delegate", "cpu", "TFLite `DELEGATE`: cpu, xnnpack, gpu, "+
		"nnapi, edgetpu or external:PATH")
	fs.BoolVar(&o.delegateFallback, "delegate-fallback", false, "run on the CPU when the "+
		"delegate cannot load, instead of failing")
	fs.Float64Var(&o.minScore, "min-score", 0.5, "ignore faces scored below `SCORE` "+
		"(0 to 1): not drawn, counted or sent as events")
	fs.Float64Var(&o.faceOverlap, "face-overlap", 0.5, "of two faces with different labels "+
		"whose boxes overlap more than this `IOU`, keep the higher-scored (0: keep both)")
	fs.DurationVar(&o.reloadInterval, "reload-interval", time.Second,
		"how often the model file is checked for a new bundle (`DURATION`)")
	addDeviceFlags(fs, &o.dev)

	fs.StringVar(&o.display, "display", "none", "`MODE`: none or window (needs a display)")
	fs.BoolVar(&o.headless, "headless", false, "no window: only the web page (--display none)")
	fs.BoolVar(&o.kiosk, "kiosk", false, "full-screen window with a banner for the nearest face")
	fs.StringVar(&o.kioskOK, "kiosk-ok-text", "Thank you", "banner `TEXT` for a mask worn "+
		"properly")
	fs.StringVar(&o.kioskBad, "kiosk-warn-text", "Please wear a mask", "banner `TEXT` for "+
		"no mask or a mask worn wrongly")
	fs.BoolVar(&o.noOverlay, "no-overlay", false, "leave out the FPS and latency line")

	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "web page `ADDR`, or off")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer `TOKEN` for changing endpoints "+
		"(none: they answer 403)")
	fs.StringVar(&o.adminTokenFile, "admin-token-file", "", "read the admin token from `FILE`")
	fs.IntVar(&o.maxViewers, "max-viewers", 8, "stream viewers at once `N`")
	fs.IntVar(&o.maxConns, "max-conns", 64, "HTTP connections at once `N`")
	fs.IntVar(&o.jpegQuality, "jpeg-quality", 80, "stream JPEG `QUALITY` (1 to 100)")

	fs.BoolVar(&o.blur, "blur-faces", false, "blur faces in everything that leaves the "+
		"device (stream, recording, snapshots)")
	fs.StringVar(&o.snapshots, "snapshots", "", "save violation snapshots in `DIR` "+
		"(nothing is stored without it)")
	fs.StringVar(&o.snapshotQuota, "snapshot-quota", "100MB", "disk `SIZE` the snapshots "+
		"may use; the oldest go first")
	fs.StringVar(&o.record, "record", "", "write the annotated video to `FILE` "+
		"(.mp4, .avi, .mkv; .mjpeg in every build)")
	fs.Float64Var(&o.recordFPS, "record-fps", 0, "frame `RATE` of the recording (0: the "+
		"source's, else 15)")

	fs.StringVar(&o.mqttURL, "mqtt-url", "", "publish events to the broker at `URL` "+
		"(mqtt://[user:pass@]host[:1883], mqtts://)")
	fs.StringVar(&o.mqttTopic, "mqtt-topic", "maskwatch/events", "MQTT `TOPIC`")
	fs.IntVar(&o.mqttQoS, "mqtt-qos", 1, "MQTT `QOS`: 0 or 1")
	fs.StringVar(&o.mqttClientID, "mqtt-client-id", "", "MQTT client `ID` (default "+
		"maskwatch-DEVICE)")
	fs.StringVar(&o.webhookURL, "webhook-url", "", "POST each event as JSON to `URL`")
	fs.StringVar(&o.webhookToken, "webhook-token", "", "bearer `TOKEN` sent to the webhook")
	fs.StringVar(&o.device, "device", "", "`NAME` of this device in events (default: the "+
		"host name)")

	fs.StringVar(&o.statsJSON, "stats-json", "", "write run statistics to `FILE` at exit")
	fs.StringVar(&o.logLevel, "log-level", "info", "`LEVEL`: debug, info, warn or error")
	return fs, o
}

// envName is the environment variable of a flag: --mqtt-url is
// MASKWATCH_MQTT_URL.
func envName(flag string) string {
	return "MASKWATCH_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// parseRun parses the command line, then fills the flags it did not set
// from the environment and the --config file.
func parseRun(args, environ []string) (*pflag.FlagSet, *options, error) {
	fs, o := runFlags()
	if err := fs.Parse(args); err != nil {
		return fs, o, err
	}
	if fs.NArg() > 0 {
		return fs, o, fmt.Errorf("unexpected argument %q: name the source with --source",
			fs.Arg(0))
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "MASKWATCH_") {
			env[k] = v
		}
	}
	if !fs.Changed("config") {
		if v, ok := env[envName("config")]; ok {
			o.config = v
		}
	}
	var file map[string]string
	if o.config != "" {
		var err error
		if file, err = readConfig(fs, o.config); err != nil {
			return fs, o, err
		}
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "config" {
			return
		}
		if v, ok := env[envName(f.Name)]; ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, e)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("--config %s: %s = %q: %w", o.config, f.Name, v, e)
			}
		}
	})
	return fs, o, err
}

// readConfig reads "name = value" (or "name: value") lines; # starts a
// comment, values may be quoted. Unknown names are an error.
func readConfig(fs *pflag.FlagSet, path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i < 0 {
			return nil, fmt.Errorf("--config %s:%d: want name = value, got %q", path, n, line)
		}
		name := strings.TrimPrefix(strings.TrimSpace(line[:i]), "--")
		value := strings.TrimSpace(line[i+1:])
		if uq, err := strconv.Unquote(value); err == nil {
			value = uq
		}
		if fs.Lookup(name) == nil || name == "config" {
			return nil, fmt.Errorf("--config %s:%d: unknown setting %q: see maskwatch help run",
				path, n, name)
		}
		out[name] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	return out, nil
}

// settings are the options checked and turned into what the run needs.
type settings struct {
	*options
	pace          camera.Pace
	window        bool
	adminToken    string
	snapshotQuota int64
	detect        detect.Options
}

func (o *options) check() (*settings, error) {
	s := &settings{options: o}
	if o.source == "" {
		return nil, errors.New("--source is empty: name a camera (0), a file, a URL, " +
			"a pipeline, - for stdin, or a folder")
	}
	if o.model == "" {
		return nil, errors.New("--model is empty: give a bundle file or default")
	}
	switch o.engine {
	case detect.EngineTFLite, detect.EngineGoMLX:
	default:
		return nil, fmt.Errorf("--engine %q: use tflite or gomlx", o.engine)
	}
	if o.threads < 0 {
		return nil, fmt.Errorf("--threads %d: give 0 (every core) or more", o.threads)
	}
	s.detect = detect.Options{Engine: o.engine, Threads: o.threads, Delegate: o.delegate,
		DelegateFallback: o.delegateFallback}
	if o.width < 0 || o.height < 0 || o.fps < 0 || o.maxFrames < 0 || o.recordFPS < 0 {
		return nil, errors.New("--width, --height, --fps, --max-frames and --record-fps " +
			"take 0 or more")
	}
	switch o.pace {
	case "auto":
		s.pace = camera.PaceLive
		if k := camera.Classify(o.source); k == camera.KindFile || k == camera.KindFolder {
			s.pace = camera.PaceNative
		}
	default:
		p, err := camera.ParsePace(o.pace)
		if err != nil {
			return nil, fmt.Errorf("--pace: %w", err)
		}
		s.pace = p
	}
	if o.minScore < 0 || o.minScore > 1 {
		return nil, fmt.Errorf("--min-score %g: give a score from 0 to 1", o.minScore)
	}
	if !(o.faceOverlap >= 0 && o.faceOverlap < 1) {
		return nil, fmt.Errorf("--face-overlap %g: give an IoU from 0 (keep every box) "+
			"to below 1", o.faceOverlap)
	}
	switch o.display {
	case "none":
	case "window":
		s.window = true
	default:
		return nil, fmt.Errorf("--display %q: use none or window", o.display)
	}
	if o.kiosk {
		s.window = true
	}
	if o.headless && s.window {
		return nil, errors.New("--headless with --display window or --kiosk: choose one")
	}
	if o.listen != "off" && o.listen != "" {
		if _, _, err := net.SplitHostPort(o.listen); err != nil {
			return nil, fmt.Errorf("--listen %q: want HOST:PORT such as 127.0.0.1:8080, "+
				"or off", o.listen)
		}
	} else if o.headless {
		return nil, errors.New("--headless with --listen off shows nothing: give --listen")
	}
	s.adminToken = o.adminToken
	if o.adminTokenFile != "" {
		if o.adminToken != "" {
			return nil, errors.New("--admin-token and --admin-token-file: give one")
		}
		b, err := os.ReadFile(o.adminTokenFile)
		if err != nil {
			return nil, fmt.Errorf("--admin-token-file: %w", err)
		}
		s.adminToken = strings.TrimSpace(string(b))
		if s.adminToken == "" {
			return nil, fmt.Errorf("--admin-token-file %s is empty", o.adminTokenFile)
		}
	}
	if s.adminToken != "" && len(s.adminToken) < 12 {
		return nil, errors.New("the admin token is shorter than 12 characters: use a long " +
			"random one, such as the output of: openssl rand -hex 16")
	}
	if o.jpegQuality < 1 || o.jpegQuality > 100 {
		return nil, fmt.Errorf("--jpeg-quality %d: give 1 to 100", o.jpegQuality)
	}
	if o.maxViewers < 1 || o.maxConns < 1 {
		return nil, errors.New("--max-viewers and --max-conns take 1 or more")
	}
	q, err := parseSize(o.snapshotQuota)
	if err != nil {
		return nil, fmt.Errorf("--snapshot-quota: %w", err)
	}
	s.snapshotQuota = q
	if o.mqttQoS != 0 && o.mqttQoS != 1 {
		return nil, fmt.Errorf("--mqtt-qos %d: use 0 or 1", o.mqttQoS)
	}
	if o.reloadInterval <= 0 {
		return nil, fmt.Errorf("--reload-interval %v: give a positive duration", o.reloadInterval)
	}
	if err := o.dev.check(); err != nil {
		return nil, err
	}
	if o.device == "" {
		o.device, _ = os.Hostname()
	}
	if o.mqttClientID == "" {
		o.mqttClientID = "maskwatch-" + o.device
	}
	return s, nil
}

// parseSize reads sizes such as 500MB, 2GiB or 1048576 (bytes).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6},
		{"KB", 1e3}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("size %q: give a positive size such as 100MB or 2GiB", s)
	}
	return int64(v * float64(mult)), nil
}
