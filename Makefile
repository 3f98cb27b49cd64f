# maskwatch: live face-mask detection at the edge.
# `make demo` runs the main job, `make test` the tests; both install what they need first.

SHELL := /bin/bash
.DEFAULT_GOAL := build

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
SHARED  ?= $(abspath ../shared/data)
OUT     ?= out

export PATH := $(PATH):/usr/local/go/bin
# go-tflite links -ltensorflowlite_c: scripts/deps.sh puts that name in .deps/lib.
export CGO_LDFLAGS := -L$(CURDIR)/.deps/lib $(CGO_LDFLAGS)
# GoMLX: the pure-Go backend only; its XLA backend would try to download plugins.
export GOFLAGS := -tags=noxla $(GOFLAGS)
export GOMLX_BACKEND ?= go
export MASKWATCH_DATA ?= $(SHARED)

LDFLAGS := -X main.version=$(VERSION)
CMDS    := masktrain maskwatch

.PHONY: deps build test bench demo eda lint fuzz clean cross release

deps:
	@bash scripts/deps.sh

build: deps
	@mkdir -p bin
	go build -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(CMDS))

test: deps lint
	go test -count=1 -timeout 30m ./...
	# Every GoCV Mat closed: gocv counts live Mats with its matprofile tag.
	go test -count=1 -tags noxla,matprofile -run MatProfile ./camera/... ./edge/... ./cmd/maskwatch/

bench: deps
	go test -run '^$$' -bench . -benchmem -benchtime 1x -count 1 ./...

# The main job: maskwatch headless on the demo clip with the default model.
# Open the page it prints while it runs; every frame is detected (--pace all)
# and the annotated video is written to out/demo-annotated.mp4. Ctrl-C stops
# it early and still closes the video.
DEMO_LISTEN ?= 127.0.0.1:8080
demo: build
	@mkdir -p $(OUT)
	bin/maskwatch run --source $(SHARED)/video/demo.mp4 --model default --headless \
		--listen $(DEMO_LISTEN) --pace all --exit-at-end \
		--record $(OUT)/demo-annotated.mp4 --stats-json $(OUT)/demo-stats.json
	@echo "annotated video: $(abspath $(OUT))/demo-annotated.mp4"
	@echo "run statistics:  $(abspath $(OUT))/demo-stats.json"

# The data exploration report of both shared data sets.
eda: build
	bin/masktrain eda --data $(SHARED)/proper-mask --data $(SHARED)/facemask \
		--out $(OUT)/eda --json
	@echo "report: file://$(abspath $(OUT))/eda/report.html"

lint:
	@bad=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); \
	if [ -n "$$bad" ]; then echo "gofmt needed on:"; echo "$$bad"; exit 1; fi
	go vet ./...
	# The detector and the models must build without cgo (the gomlx engine).
	CGO_ENABLED=0 go vet ./edge/detect ./models/...

FUZZTIME ?= 30s
fuzz:
	go test -run '^$$' -fuzz FuzzParseFileName -fuzztime $(FUZZTIME) ./train/dataset/
	go test -run '^$$' -fuzz FuzzParseVOC -fuzztime $(FUZZTIME) ./train/dataset/
	go test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./models/bundle/
	go test -run '^$$' -fuzz FuzzInspect -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./models/tflite/

# linux/arm64 builds of maskwatch (cross/): full (cgo: GoCV, TFLite, OpenBLAS,
# cross-compiled against an arm64 sysroot of Debian packages that
# cross/sysroot.sh assembles under .deps/cross) and static (CGO_ENABLED=0).
cross: deps
	VERSION=$(VERSION) bash cross/build.sh full arm64 $(OUT)/cross/full-arm64 ./cmd/maskwatch
	VERSION=$(VERSION) bash cross/build.sh static arm64 $(OUT)/cross/static-arm64 ./cmd/maskwatch
	@file $(OUT)/cross/full-arm64/maskwatch $(OUT)/cross/static-arm64/maskwatch

# dist/maskwatch-VERSION-linux-{arm64,amd64}.tar.gz with both builds, the
# default model, the systemd unit, the device README and sha256 sums.
release: deps
	VERSION=$(VERSION) bash cross/release.sh

clean:
	rm -rf bin $(OUT)
