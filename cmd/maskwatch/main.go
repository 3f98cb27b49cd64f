// Command maskwatch is the device side of maskwatch: live face-mask
// detection from a camera, shown in a window, on a kiosk screen, or served
// headless as a web page with a stream, status, events and metrics.
//
// Usage:
//
//	maskwatch run --source SPEC [--model PATH|default] [flags]
//	maskwatch finetune --model PATH [--collect DIR] [--data DIR ...] [flags]
//	maskwatch help [run]
//	maskwatch --version
//
// Every flag of run can also be set as MASKWATCH_NAME in the environment
// (--mqtt-url is MASKWATCH_MQTT_URL) or as "name = value" in a --config
// file; the command line wins over the environment, which wins over the
// file.
//
// Exit status: 0 on success, 1 when the run fails, 2 for a usage error.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

const programName = "maskwatch"

const usage = `maskwatch detects face masks live, at the edge.

Usage:
  maskwatch COMMAND [flags]

Commands:
  run      detect on a camera, file, stream or folder; show a window, a kiosk
           screen or a headless web page
  finetune train the running model on labelled frames of this device's scene
  help     show this text, or the flags of run: maskwatch help run

Flags:
  -h, --help      show this text
      --version   print the version and exit

Exit status: 0 success, 1 failure, 2 usage error.
`

func main() {
	// OpenCV's own log lines (FFmpeg and GStreamer probing) are noise for
	// an operator; maskwatch logs what matters itself.
	if os.Getenv("OPENCV_LOG_LEVEL") == "" {
		os.Setenv("OPENCV_LOG_LEVEL", "ERROR")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run carries out one command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runLive(ctx, args[1:], stdout, stderr, os.Environ())
	case "finetune":
		return runFinetune(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		if len(args) > 1 && args[1] == "run" {
			fs, _ := runFlags()
			fmt.Fprint(stdout, runUsage+"\nFlags:\n"+fs.FlagUsages())
			return exitOK
		}
		if len(args) > 1 && args[1] == "finetune" {
			fs, _ := finetuneFlags()
			fmt.Fprint(stdout, finetuneUsage+"\nFlags:\n"+fs.FlagUsages())
			return exitOK
		}
		if len(args) > 1 {
			fmt.Fprintf(stderr, "%s help: unknown command %q: run '%s help' for the list\n",
				programName, args[1], programName)
			return exitUsage
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	case "--version", "version":
		fmt.Fprintln(stdout, programName, version)
		return exitOK
	}
	fmt.Fprintf(stderr, "%s: unknown command %q: run '%s help' for the list\n",
		programName, args[0], programName)
	return exitUsage
}
