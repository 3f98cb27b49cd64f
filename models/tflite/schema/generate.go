// Package schema is the TensorFlow Lite flatbuffer schema as Go: the
// generated readers and builders of every table of TensorFlow 2.14.1's
// tensorflow/lite/schema/schema.fbs, which the TFLite writer and the bundle
// reader use.
//
// schema.fbs is copied unchanged from Debian's
// tensorflow_2.14.1+dfsg.orig.tar.xz (tensorflow-2.14.1/tensorflow/lite/
// schema/schema.fbs; Apache License 2.0, Copyright The TensorFlow Authors),
// sha256 23b3a682cdde9d468bd43566496ca02d46737046566cf718ae0a68be576b1b06.
// The Go files beside it are flatc 23.5.26's output (Debian's
// flatbuffers-compiler), matching github.com/google/flatbuffers
// v23.5.26+incompatible; regenerate them with go generate.
package schema

//go:generate sh -c "rm -f [A-Z]*.go && flatc --go --go-namespace schema -o .. schema.fbs && gofmt -w ."
