package backend

import (
	"fmt"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/maskwatch/maskwatch/models/backend/gradcheck"
)

// convCase is one 2D convolution in NHWC/HWIO layout.
type convCase struct {
	n, h, w, cin, cout, kh, kw int
	stride, dilation, groups   int
	pad                        [2][2]int
}

func (cc convCase) String() string {
	return fmt.Sprintf("%dx%dx%d->%d k%dx%d s%d d%d g%d pad%v",
		cc.h, cc.w, cc.cin, cc.cout, cc.kh, cc.kw, cc.stride, cc.dilation, cc.groups, cc.pad)
}

// referenceConv is a direct loop over the definition of a grouped, strided, dilated and
// padded 2D convolution, NHWC input and HWIO kernel.
func referenceConv(cc convCase, x, k []float64) ([]float64, []int) {
	effH, effW := (cc.kh-1)*cc.dilation+1, (cc.kw-1)*cc.dilation+1
	oh := (cc.h+cc.pad[0][0]+cc.pad[0][1]-effH)/cc.stride + 1
	ow := (cc.w+cc.pad[1][0]+cc.pad[1][1]-effW)/cc.stride + 1
	gin, gout := cc.cin/cc.groups, cc.cout/cc.groups
	out := make([]float64, cc.n*oh*ow*cc.cout)
	for b := range cc.n {
		for i := range oh {
			for j := range ow {
				for o := range cc.cout {
					g := o / gout
					sum := 0.0
					for di := range cc.kh {
						for dj := range cc.kw {
							y := i*cc.stride + di*cc.dilation - cc.pad[0][0]
							xx := j*cc.stride + dj*cc.dilation - cc.pad[1][0]
							if y < 0 || y >= cc.h || xx < 0 || xx >= cc.w {
								continue
							}
							for c := range gin {
								xv := x[((b*cc.h+y)*cc.w+xx)*cc.cin+g*gin+c]
								kv := k[((di*cc.kw+dj)*gin+c)*cc.cout+o]
								sum += xv * kv
							}
						}
					}
					out[((b*oh+i)*ow+j)*cc.cout+o] = sum
				}
			}
		}
	}
	return out, []int{cc.n, oh, ow, cc.cout}
}

func (cc convCase) build(in []*graph.Node) *graph.Node {
	conv := graph.Convolve(in[0], in[1]).StridePerAxis(cc.stride, cc.stride).
		PaddingPerDim([][2]int{cc.pad[0], cc.pad[1]})
	if cc.dilation > 1 {
		conv = graph.Convolve(in[0], in[1]).DilationPerAxis(cc.dilation, cc.dilation).
			PaddingPerDim([][2]int{cc.pad[0], cc.pad[1]})
	}
	if cc.groups > 1 {
		conv = conv.ChannelGroupCount(cc.groups)
	}
	return conv.Done()
}

func (cc convCase) inputs(seed uint64) (x, k *tensors.Tensor) {
	x = gradcheck.Uniform(seed, cc.n, cc.h, cc.w, cc.cin)
	k = gradcheck.Uniform(seed+1, cc.kh, cc.kw, cc.cin/cc.groups, cc.cout)
	return x, k
}

var convCases = []convCase{
	{n: 2, h: 5, w: 6, cin: 3, cout: 4, kh: 3, kw: 3, stride: 1, dilation: 1, groups: 1,
		pad: [2][2]int{{1, 1}, {1, 1}}},
	{n: 1, h: 7, w: 6, cin: 3, cout: 2, kh: 3, kw: 3, stride: 2, dilation: 1, groups: 1,
		pad: [2][2]int{{1, 1}, {1, 1}}},
	{n: 2, h: 4, w: 4, cin: 5, cout: 3, kh: 1, kw: 1, stride: 1, dilation: 1, groups: 1},
	{n: 1, h: 6, w: 5, cin: 4, cout: 6, kh: 1, kw: 1, stride: 2, dilation: 1, groups: 1},
	{n: 1, h: 6, w: 7, cin: 2, cout: 3, kh: 3, kw: 2, stride: 1, dilation: 2, groups: 1,
		pad: [2][2]int{{2, 1}, {0, 1}}},
	{n: 1, h: 6, w: 6, cin: 4, cout: 4, kh: 3, kw: 3, stride: 1, dilation: 1, groups: 4,
		pad: [2][2]int{{1, 1}, {1, 1}}},
	{n: 2, h: 7, w: 7, cin: 3, cout: 3, kh: 3, kw: 3, stride: 2, dilation: 1, groups: 3,
		pad: [2][2]int{{1, 1}, {1, 1}}},
	{n: 1, h: 5, w: 5, cin: 2, cout: 6, kh: 3, kw: 3, stride: 1, dilation: 1, groups: 2,
		pad: [2][2]int{{1, 1}, {1, 1}}},
	{n: 1, h: 5, w: 5, cin: 3, cout: 6, kh: 3, kw: 3, stride: 1, dilation: 1, groups: 3},
	{n: 1, h: 3, w: 3, cin: 2, cout: 2, kh: 5, kw: 5, stride: 1, dilation: 1, groups: 1,
		pad: [2][2]int{{2, 2}, {2, 2}}},
	// TensorFlow's SAME at stride 2 on even sizes: the odd cell of padding after.
	{n: 1, h: 6, w: 4, cin: 3, cout: 2, kh: 3, kw: 3, stride: 2, dilation: 1, groups: 1,
		pad: [2][2]int{{0, 1}, {0, 1}}},
	{n: 2, h: 8, w: 6, cin: 4, cout: 4, kh: 5, kw: 5, stride: 2, dilation: 1, groups: 4,
		pad: [2][2]int{{1, 2}, {1, 2}}},
}

func TestConvGeneralMatchesReference(t *testing.T) {
	for _, cc := range convCases {
		x, k := cc.inputs(7)
		got, dims := run(t, cc.build, x, k)
		want, wantDims := referenceConv(cc, tensors.MustCopyFlatData[float64](x),
			tensors.MustCopyFlatData[float64](k))
		if fmt.Sprint(dims) != fmt.Sprint(wantDims) {
			t.Fatalf("%v: output %v, want %v", cc, dims, wantDims)
		}
		assertClose(t, cc.String(), got, want, 1e-12)
	}
}

// TestConvGeneralLayoutsAndGroups compares with simplego's own convolution on axis layouts,
// input dilation and batch groups, which the reference loop does not cover.
func TestConvGeneralLayoutsAndGroups(t *testing.T) {
	channelsFirst := backends.ConvolveAxesConfig{
		InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3},
		KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: []int{2, 3},
		OutputBatch: 0, OutputChannels: 1, OutputSpatial: []int{2, 3},
	}
	mixed := backends.ConvolveAxesConfig{
		InputBatch: 3, InputChannels: 0, InputSpatial: []int{2, 1},
		KernelOutputChannels: 2, KernelInputChannels: 0, KernelSpatial: []int{1, 3},
		OutputBatch: 1, OutputChannels: 2, OutputSpatial: []int{3, 0},
	}
	cases := []struct {
		name                 string
		xDims, kDims         []int
		axes                 backends.ConvolveAxesConfig
		strides, inDil, kDil []int
		pads                 [][2]int
		groups, batchGroups  int
	}{
		{"channels first", []int{2, 3, 5, 6}, []int{4, 3, 3, 3}, channelsFirst,
			[]int{2, 1}, nil, []int{1, 1}, [][2]int{{1, 1}, {0, 2}}, 1, 1},
		{"mixed axes", []int{4, 6, 5, 2}, []int{4, 3, 6, 2}, mixed,
			[]int{1, 2}, nil, []int{1, 1}, [][2]int{{1, 0}, {1, 1}}, 1, 1},
		{"input dilation", []int{1, 3, 4, 5}, []int{2, 3, 3, 2}, channelsFirst,
			[]int{1, 1}, []int{2, 3}, []int{1, 1}, [][2]int{{2, 2}, {1, 2}}, 1, 1},
	}
	reference := simplego.GetBackend()
	for _, tc := range cases {
		x := gradcheck.Uniform(3, tc.xDims...)
		k := gradcheck.Uniform(4, tc.kDims...)
		fn := func(in []*graph.Node) *graph.Node {
			return graph.ConvGeneral(in[0], in[1], tc.axes, tc.strides, tc.pads, tc.inDil,
				tc.kDil, tc.groups, tc.batchGroups)
		}
		got, dims := run(t, fn, x, k)
		exec, err := graph.NewExec(reference, fn)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Exec(gradcheck.Uniform(3, tc.xDims...), gradcheck.Uniform(4, tc.kDims...))
		if err != nil {
			t.Fatalf("%s: simplego: %v", tc.name, err)
		}
		if fmt.Sprint(dims) != fmt.Sprint(out[0].Shape().Dimensions) {
			t.Fatalf("%s: output %v, simplego %v", tc.name, dims, out[0].Shape().Dimensions)
		}
		assertClose(t, tc.name, got, tensors.MustCopyFlatData[float64](out[0]), 1e-12)
	}
}

// TestConvGeneralBatchGroups checks batch groups against their definition: output channel
// group g is the convolution of batch group g with kernel output channel group g.
func TestConvGeneralBatchGroups(t *testing.T) {
	axes := backends.ConvolveAxesConfig{
		InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3},
		KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: []int{2, 3},
		OutputBatch: 0, OutputChannels: 1, OutputSpatial: []int{2, 3},
	}
	cases := []struct {
		xDims, kDims []int
		pads         [][2]int
		groups       int
	}{
		{[]int{6, 2, 5, 5}, []int{6, 2, 3, 3}, [][2]int{{1, 1}, {1, 1}}, 3},
		{[]int{4, 3, 6, 6}, []int{4, 3, 5, 5}, nil, 2},
		{[]int{3, 1, 3, 4}, []int{6, 1, 2, 3}, nil, 3},
	}
	for _, tc := range cases {
		x := gradcheck.Uniform(3, tc.xDims...)
		k := gradcheck.Uniform(4, tc.kDims...)
		got, _ := run(t, func(in []*graph.Node) *graph.Node {
			return graph.ConvGeneral(in[0], in[1], axes, nil, tc.pads, nil, nil, 1, tc.groups)
		}, x, k)
		want, _ := run(t, func(in []*graph.Node) *graph.Node {
			xs := graph.Split(in[0], 0, tc.groups)
			ks := graph.Split(in[1], 0, tc.groups)
			parts := make([]*graph.Node, tc.groups)
			for g := range parts {
				parts[g] = graph.ConvGeneral(xs[g], ks[g], axes, nil, tc.pads, nil, nil, 1, 1)
			}
			return graph.Concatenate(parts, 1)
		}, x, k)
		assertClose(t, fmt.Sprintf("batch groups %v", tc.xDims), got, want, 1e-12)
	}
}
