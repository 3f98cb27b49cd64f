// Package frcnn is maskwatch's detector: a Faster R-CNN with a ResNet50 or
// MobileNetV3-Large backbone, built in GoMLX for training and evaluation.
//
// The detector runs in two stages, the same split the TFLite bundle uses on
// the edge: stage 1 (backbone, a one-level feature pyramid and the region
// proposal network) runs on whole images; stage 2 (the box head) runs on
// RoIAligned features of the proposals. Anchors, proposal NMS, RoIAlign
// weights, target assignment and final NMS run in Go, in package box.
package frcnn

import (
	"errors"
	"fmt"

	"github.com/maskwatch/maskwatch/models/box"
	"github.com/maskwatch/maskwatch/models/net"
)

// Config is everything that fixes a detector's architecture and its
// training targets. It is stored in every checkpoint.
type Config struct {
	Backbone net.Backbone `json:"backbone"`
	// Size is the side of the square model input, in pixels.
	Size int `json:"size"`
	// Classes names the foreground classes; the model's class k is
	// Classes[k-1], class 0 being the background.
	Classes []string `json:"classes"`
	// Proper is the index in Classes of the class drawn green; -1 for none.
	Proper int `json:"proper"`
	// Mean and Std normalise RGB values in [0, 1], per channel.
	Mean [3]float32 `json:"mean"`
	Std  [3]float32 `json:"std"`

	// NeckChannels is the width of the feature map that the RPN and the box
	// head read (stride 16, the backbone's C4 plus its upsampled C5).
	NeckChannels int `json:"neck_channels"`
	// HeadWidth is the width of the box head's two fully connected layers.
	HeadWidth int `json:"head_width"`

	Anchors  box.AnchorConfig `json:"anchors"`
	RoIAlign box.RoIAlign     `json:"roi_align"`

	// RPNBatch anchors an image train the RPN, half of them positive at most.
	RPNBatch int `json:"rpn_batch"`
	// RoIBatch proposals an image train the box head, a quarter positive at most.
	RoIBatch int `json:"roi_batch"`

	TrainProposals box.ProposalConfig  `json:"train_proposals"`
	EvalProposals  box.ProposalConfig  `json:"eval_proposals"`
	Detection      box.DetectionConfig `json:"detection"`
}

// DefaultConfig is maskwatch's detector for the study's 224 px faces.
//
// Where torchvision's Faster R-CNN puts a four-level FPN of 256 channels and
// a 1024-wide box head on its backbones (18.9M weights with MobileNetV3),
// this one reads a single stride-16 map of 128 channels and a 256-wide head:
// the faces of the study are 44 to 161 px, which one level of anchors from
// 64 to 160 px covers, and the head's weights drop from 13.9M to 1.7M.
func DefaultConfig(backbone net.Backbone) Config {
	neck := 128
	if backbone == net.ResNet50 {
		neck = 256
	}
	return Config{
		Backbone:       backbone,
		Size:           224,
		Classes:        []string{"proper", "not_proper"},
		Proper:         0,
		Mean:           [3]float32{0.485, 0.456, 0.406},
		Std:            [3]float32{0.229, 0.224, 0.225},
		NeckChannels:   neck,
		HeadWidth:      256,
		Anchors:        box.DefaultAnchorConfig(),
		RoIAlign:       box.DefaultRoIAlign(),
		RPNBatch:       256,
		RoIBatch:       64,
		TrainProposals: box.TrainProposalConfig(),
		EvalProposals:  box.EvalProposalConfig(),
		Detection:      box.DefaultDetectionConfig(),
	}
}

// NumClasses counts the model's classes, background included.
func (c Config) NumClasses() int { return len(c.Classes) + 1 }

// Grid is the size of the stride-16 feature map, in cells.
func (c Config) Grid() int { return (c.Size + 15) / 16 }

// Validate reports a config that cannot make a detector.
func (c Config) Validate() error {
	if _, err := net.ParseBackbone(string(c.Backbone)); err != nil {
		return err
	}
	if c.Size < 64 || c.Size%32 != 0 {
		return fmt.Errorf("detector: size %d: must be a multiple of 32, at least 64", c.Size)
	}
	if len(c.Classes) == 0 {
		return errors.New("detector: needs at least one class")
	}
	if c.Proper < -1 || c.Proper >= len(c.Classes) {
		return fmt.Errorf("detector: proper class %d: not among the %d classes", c.Proper,
			len(c.Classes))
	}
	if c.NeckChannels <= 0 || c.HeadWidth <= 0 {
		return fmt.Errorf("detector: neck %d and head %d channels: must be positive",
			c.NeckChannels, c.HeadWidth)
	}
	if err := c.Anchors.Validate(); err != nil {
		return err
	}
	if c.Anchors.Stride != 16 {
		return fmt.Errorf("detector: anchor stride %d: the feature map has stride 16",
			c.Anchors.Stride)
	}
	if c.RoIAlign.OutH <= 0 || c.RoIAlign.OutW <= 0 || c.RoIAlign.SpatialScale != 1.0/16 {
		return fmt.Errorf("detector: RoIAlign %+v: want a positive grid at scale 1/16",
			c.RoIAlign)
	}
	if c.RPNBatch <= 0 || c.RoIBatch <= 0 {
		return fmt.Errorf("detector: RPN batch %d and RoI batch %d: must be positive",
			c.RPNBatch, c.RoIBatch)
	}
	if c.EvalProposals.PostNMSTopN <= 0 {
		return fmt.Errorf("detector: %d proposals after NMS: must be positive",
			c.EvalProposals.PostNMSTopN)
	}
	for i, s := range c.Std {
		if !(s > 0) {
			return fmt.Errorf("detector: std of channel %d is %v: must be positive", i, s)
		}
	}
	return nil
}

// Stages describes the two networks.
//
// Stage 1 takes images [N, Size, Size, 3] and returns the feature map
// [N, G, G, NeckChannels], the RPN objectness logits [N, G, G, A] and the
// RPN deltas [N, G, G, 4A], G being Grid and A the anchors a cell.
// Stage 2 takes pooled RoIs [R, OutH, OutW, NeckChannels] and returns class
// logits [R, NumClasses] and per-class deltas [R, 4*NumClasses].
func (c Config) Stages() (stage1, stage2 *net.Net, err error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	b := net.NewBuilder()
	image := b.Input("image", 3)
	features, err := c.Backbone.Describe(b, image)
	if err != nil {
		return nil, nil, err
	}
	b.Push("neck")
	lateral4 := b.Conv("lateral4", features.C4, c.NeckChannels, 1, 1, 1, true)
	lateral5 := b.Conv("lateral5", features.C5, c.NeckChannels, 1, 1, 1, true)
	merged := b.Add("merge", lateral4, b.Upsample2x("upsample", lateral5))
	feature := b.Conv("smooth", merged, c.NeckChannels, 3, 1, 1, true)
	b.Pop()
	b.Push("rpn")
	hidden := b.Act("relu", b.Conv("conv", feature, c.NeckChannels, 3, 1, 1, true), net.ReLU)
	anchors := c.Anchors.PerCell()
	objectness := b.ConvInit("objectness", hidden, anchors, 1, "normal:0.01")
	deltas := b.ConvInit("deltas", hidden, 4*anchors, 1, "normal:0.01")
	b.Pop()
	b.Output(feature)
	b.Output(objectness)
	b.Output(deltas)
	if stage1, err = b.Net(); err != nil {
		return nil, nil, err
	}

	b = net.NewBuilder()
	pooled := b.Input("rois", c.NeckChannels)
	b.Push("head")
	x := b.Flatten("flatten", pooled, c.RoIAlign.OutH*c.RoIAlign.OutW*c.NeckChannels)
	x = b.Act("relu6", b.Dense("fc6", x, c.HeadWidth, ""), net.ReLU)
	x = b.Act("relu7", b.Dense("fc7", x, c.HeadWidth, ""), net.ReLU)
	classes := b.Dense("class", x, c.NumClasses(), "normal:0.01")
	boxes := b.Dense("box", x, 4*c.NumClasses(), "normal:0.001")
	b.Pop()
	b.Output(classes)
	b.Output(boxes)
	stage2, err = b.Net()
	return stage1, stage2, err
}
