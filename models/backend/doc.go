// Package backend is the GoMLX backend maskwatch trains the detector with: GoMLX v0.26.0's
// pure-Go backend (simplego) plus the operations and gradients that training a convolutional
// detector needs, composed from simplego's own operations, no XLA; and, whenever cgo is
// enabled, float32 matrix products on Debian's OpenBLAS. CGO_ENABLED=0 builds are pure Go.
//
// Select it with GOMLX_BACKEND=maskwatch (any "maskwatch:CONFIG" is passed to simplego,
// e.g. "maskwatch:ops_sequential") in a binary that imports this package, or call New.
// Subpackage gradcheck checks gradients against finite differences.
//
// Operations added to simplego, which returns "not implemented" for them:
//
//   - Pad: the gradients of Slice, Split and sum/mean pooling pad. Built from Concatenate,
//     Reshape and Slice; negative and interior padding included.
//   - Reverse: convolution gradients flip the kernel. A Gather of descending indices.
//   - SelectAndScatterMax and SelectAndScatterMin: the gradients of max and min pooling.
//     One strided slice per window offset; the first extreme in window order takes the
//     value, as in XLA.
//
// ConvGeneral is replaced: simplego's direct loop is 5 to 35 times slower (see
// BenchmarkConvForward), crashes on grouped convolutions unless kernel dilations are set, and
// rejects convolutions built without strides. Here a convolution is shifted (strided) slices
// of the padded input and one matrix multiplication (im2col); a depthwise one multiplies
// each shifted slice by its per-channel weights and adds them up; when the output has fewer
// positions than the kernel (kernel gradients), one slice per output position is contracted
// with the whole kernel instead. Input dilation, kernel dilation, channel groups and batch
// groups are supported.
//
// Matrix products (DotGeneral, hence Dot, Einsum and every convolution here) in float32 run
// on OpenBLAS's sgemm through package matmul, 100 to 200 GFLOP/s on two cores against
// simplego's 5 to 14 (BenchmarkDotGeneral), in cgo builds, for the backends New creates
// unless their configuration says "noblas"; MASKWATCH_BLAS=off keeps simplego's for the
// whole process. Every layout of batch, cross and contracting axes is accepted: operands
// BLAS can read in place (batch axes flattening to one stride, cross and contracting axes
// each flattening to one, one of them with unit stride) are passed as they are, transposed
// with CblasTrans where needed; others are first copied into [batch, cross, contracting].
// Other dtypes, plain simplego backends and "noblas" ones keep simplego's product. matmul
// runs OpenBLAS single-threaded and splits each product over at most GOMAXPROCS goroutines
// counted across all products of the process, so products that simplego runs at the same
// time share the cores instead of oversubscribing them.
//
// simplego has no hook for this: the package replaces the DotGeneral entry of simplego's
// unexported executor table (nodeExecutors, named with go:linkname) and reads the
// unexported parameters of DotGeneral nodes by reflection. Before doing so it checks the
// GoMLX version in the build information, that the table entry is simplego's
// execDotGeneral, the fields of simplego.Node and dotGeneralNodeData and, on a graph built
// for the purpose, what they hold; any mismatch panics at start-up naming it (set
// MASKWATCH_BLAS=off to run without OpenBLAS). matmul checks every product's dimensions
// against its slices before calling OpenBLAS.
//
// Float32 elementwise arithmetic with broadcasting (Add, Sub, Mul, Div, Max, Min), Slice,
// BroadcastInDim, Transpose, ReduceSum and ReduceMax also run on executors of this package
// (fastops.go) for the backends New creates: simplego steps a per-axis iterator for every
// element, which made these three quarters of a training step; here neighbouring axes that
// move together are merged, the innermost run is a plain loop or copy, and large operations
// are split over the cores (a detector training step runs 2 to 3 times faster).
// MASKWATCH_FASTOPS=off keeps simplego's executors, to compare.
//
// Importing the package also changes these entries of graph.VJPRegistration, for every
// backend of the process (they build standard operations only):
//
//   - DotGeneral and Dot: two matrix products. GoMLX's gradient broadcasts the operands to
//     the whole [batch, M, K, N] product, too large for a box head.
//   - ConvGeneral: two ConvGenerals (a transposed convolution for the input, a convolution
//     of input and output gradient for the kernel), valid for channel groups and depthwise
//     kernels, where GoMLX's loops over groups and builds wrong kernel gradients.
//   - Gather, for GatherSlices with slices smaller than the operand: simplego's ScatterSum
//     misplaces windows that do not span whole axes, which made the gradients of
//     GatherSlices and of Interpolate(...).Bilinear() wrong. Other gathers keep GoMLX's.
//   - Pad and Reverse, which had none.
//
// Known limits:
//
// Gradients of convolutions with input dilation or batch groups (second derivatives) are not
// defined; graph.Gradient panics with a message saying so.
// Batch groups are group-major (output channel o uses batch group o/(Cout/groups)), as XLA
// does for depthwise kernel gradients; simplego's own ConvGeneral reads them differently.
// The gradients read GoMLX v0.26.0's unexported node parameters by reflection: another GoMLX
// version may rename them, which panics naming the field, and the tests of this package fail.
// layers.Convolution(...).ChannelGroupCount creates a kernel of the wrong shape: build grouped
// and depthwise kernels [kh, kw, cin/groups, cout] yourself and call
// graph.Convolve(x, kernel).ChannelGroupCount(groups).
// batchnorm.New needs UseBackendInference(false) (simplego has no BatchNormForTraining), and
// in training its gradient ignores the batch mean and variance (GoMLX stops it there): use
// frozen statistics, or a normalisation written with graph operations.
// Without cgo (or with "noblas"), matrix products are simplego's, 2 to 14 GFLOP/s on these
// machines. Stride-2 convolutions spend three quarters of their input gradient multiplying
// inserted zeros; depthwise convolutions do not use matrix products and gain nothing from
// OpenBLAS.
// simplego's default worker limit deadlocks when several matrix products of a graph run at
// once, so New adds "parallelism=-1" unless the configuration sets parallelism (simplego's
// line saying so is sent to the null device, off the commands' stdout).
package backend
