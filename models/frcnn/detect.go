package frcnn

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/net"
)

// detector holds the inference executables and the Go post-processing.
type detector struct {
	stage1, stage2 *context.Exec
	proposer       *box.Proposer
	post           *box.Postprocessor
}

func (m *Model) detector() (*detector, error) {
	if m.detect != nil {
		return m.detect, nil
	}
	d := &detector{
		proposer: box.NewProposer(m.Config.EvalProposals),
		post:     box.NewPostprocessor(m.Config.Detection),
	}
	var err error
	d.stage1, err = m.newExec("stage 1", func(ctx *context.Context,
		in []*graph.Node) []*graph.Node {
		feature, objectness, deltas := m.stage1(ctx, net.Inference, in[0])
		return []*graph.Node{feature, objectness, deltas}
	})
	if err != nil {
		return nil, err
	}
	d.stage2, err = m.newExec("stage 2", func(ctx *context.Context,
		in []*graph.Node) []*graph.Node {
		classes, deltas := m.stage2(ctx, in[0], in[1], in[2])
		return []*graph.Node{classes, deltas}
	})
	if err != nil {
		return nil, err
	}
	m.detect = d
	return d, nil
}

// rpnInference runs stage 1 with running statistics and returns the RPN's
// objectness logits and deltas.
func (m *Model) rpnInference(images *tensors.Tensor) (objectness, deltas []float32, err error) {
	d, err := m.detector()
	if err != nil {
		return nil, nil, err
	}
	out, err := d.stage1.Exec(images)
	if err != nil {
		return nil, nil, fmt.Errorf("detector: stage 1: %w", err)
	}
	if objectness, err = tensors.CopyFlatData[float32](out[1]); err != nil {
		return nil, nil, err
	}
	deltas, err = tensors.CopyFlatData[float32](out[2])
	return objectness, deltas, err
}

// Detect finds faces in n normalised images [n, Size, Size, 3] and returns
// each image's detections, best first, in model-input pixels. Every
// distinct n compiles its graphs once.
func (m *Model) Detect(images []float32, n int) ([][]box.Detection, error) {
	cfg := m.Config
	s, g := cfg.Size, cfg.Grid()
	if n <= 0 || len(images) != n*s*s*3 {
		return nil, fmt.Errorf("detector: %d image values for %d images of %dx%dx3",
			len(images), n, s, s)
	}
	d, err := m.detector()
	if err != nil {
		return nil, err
	}
	out, err := d.stage1.Exec(tensors.FromFlatDataAndDimensions(images, n, s, s, 3))
	if err != nil {
		return nil, fmt.Errorf("detector: stage 1: %w", err)
	}
	feature := out[0]
	objectness, err := tensors.CopyFlatData[float32](out[1])
	if err != nil {
		return nil, err
	}
	deltas, err := tensors.CopyFlatData[float32](out[2])
	if err != nil {
		return nil, err
	}

	a, p := len(m.anchors), cfg.EvalProposals.PostNMSTopN
	outH, outW := cfg.RoIAlign.OutH, cfg.RoIAlign.OutW
	wy, wx := make([]float32, n*p*outH*g), make([]float32, n*p*outW*g)
	proposals := make([][]box.Box, n)
	for i := range n {
		proposals[i], err = d.proposer.Propose(nil, m.anchors, objectness[i*a:(i+1)*a],
			deltas[4*i*a:4*(i+1)*a], nil, float64(s), float64(s))
		if err != nil {
			return nil, err
		}
		for k, roi := range proposals[i] {
			slot := i*p + k
			if err := cfg.RoIAlign.AxisWeights(wy[slot*outH*g:(slot+1)*outH*g],
				wx[slot*outW*g:(slot+1)*outW*g], g, g, roi); err != nil {
				return nil, err
			}
		}
	}
	out, err = d.stage2.Exec(feature, tensors.FromFlatDataAndDimensions(wy, n, p*outH, g),
		tensors.FromFlatDataAndDimensions(wx, n*p, outW, g))
	if err != nil {
		return nil, fmt.Errorf("detector: stage 2: %w", err)
	}
	classes, err := tensors.CopyFlatData[float32](out[0])
	if err != nil {
		return nil, err
	}
	boxDeltas, err := tensors.CopyFlatData[float32](out[1])
	if err != nil {
		return nil, err
	}

	k := cfg.NumClasses()
	results := make([][]box.Detection, n)
	for i := range n {
		count := len(proposals[i])
		at := i * p
		results[i], err = d.post.Detect(nil, proposals[i], classes[at*k:(at+count)*k],
			boxDeltas[4*at*k:4*(at+count)*k], k, float64(s), float64(s))
		if err != nil {
			return nil, err
		}
	}
	return results, nil
}
