package box

import (
	"fmt"
	"math"
)

// RoIAlign pools a fixed-size grid of features for each region of interest
// by bilinear sampling, as torchvision's roi_align does. On the edge it runs
// on the CPU between the two TFLite stages: the backbone's feature map in,
// the box head's input out.
//
// Each RoI, scaled into feature cells by SpatialScale, is cut into OutH x
// OutW bins; each bin averages SamplingRatio x SamplingRatio bilinear
// samples at evenly spaced points inside it. A sample more than one cell
// outside the map counts as 0; one less than a cell outside takes the value
// of the nearest edge, as in torchvision.
type RoIAlign struct {
	// OutH, OutW are the output grid's size in bins (7 x 7 in Faster R-CNN).
	OutH, OutW int
	// SamplingRatio is the number of samples along each side of a bin; 0 or
	// less picks ceil(RoI size / output size) per RoI, as torchvision's -1
	// does, which for a huge RoI is a great many samples.
	SamplingRatio int
	// SpatialScale turns image pixels into feature cells: 1/stride.
	SpatialScale float64
	// Aligned shifts the RoI by half a cell (pixel centres rather than
	// corners), torchvision's aligned=True. Without it, as in the original
	// RoIAlign, an RoI is at least one cell wide and high.
	Aligned bool
}

// DefaultRoIAlign is the study's: 7 x 7 bins of 2 x 2 samples on the
// stride-16 map that DefaultAnchorConfig assumes, with aligned=true.
func DefaultRoIAlign() RoIAlign {
	return RoIAlign{OutH: 7, OutW: 7, SamplingRatio: 2, SpatialScale: 1.0 / 16, Aligned: true}
}

// Pool writes the pooled features of rois (boxes in image pixels) into out,
// which must hold exactly len(rois)*OutH*OutW*c float32, laid out NHWC:
// RoI by RoI, then bin row, bin column, channel. feature is one image's map
// in NHWC order, h x w cells of c channels. It allocates nothing. The error
// reports sizes that do not agree; no RoI gives no output and no error.
func (r RoIAlign) Pool(out, feature []float32, h, w, c int, rois []Box) error {
	if r.OutH <= 0 || r.OutW <= 0 {
		return fmt.Errorf("roi align: output %dx%d: must be positive", r.OutH, r.OutW)
	}
	if h <= 0 || w <= 0 || c <= 0 || len(feature) != h*w*c {
		return fmt.Errorf("roi align: feature map of %d values is not %dx%dx%d",
			len(feature), h, w, c)
	}
	perRoI := r.OutH * r.OutW * c
	if len(out) != len(rois)*perRoI {
		return fmt.Errorf("roi align: output of %d values, want %d RoIs x %dx%dx%d",
			len(out), len(rois), r.OutH, r.OutW, c)
	}

	for n, roi := range rois {
		r.poolOne(out[n*perRoI:(n+1)*perRoI], feature, h, w, c, roi)
	}
	return nil
}

// poolOne pools one RoI into out, OutH*OutW*c values.
func (r RoIAlign) poolOne(out, feature []float32, h, w, c int, roi Box) {
	offset := 0.0
	if r.Aligned {
		offset = 0.5
	}
	x0 := roi.X1*r.SpatialScale - offset
	y0 := roi.Y1*r.SpatialScale - offset
	roiW := roi.X2*r.SpatialScale - offset - x0
	roiH := roi.Y2*r.SpatialScale - offset - y0
	if !r.Aligned {
		roiW, roiH = math.Max(roiW, 1), math.Max(roiH, 1)
	}
	binW, binH := roiW/float64(r.OutW), roiH/float64(r.OutH)
	gridW, gridH := r.SamplingRatio, r.SamplingRatio
	if r.SamplingRatio <= 0 {
		gridW, gridH = ceilCount(binW), ceilCount(binH)
	}
	inv := float32(1 / float64(max(gridW*gridH, 1)))
	if gridW > maxMergedGrid || gridH > maxMergedGrid {
		r.poolSamples(out, feature, h, w, c, x0, y0, binW, binH, gridW, gridH, inv)
		return
	}

	// The samples of a bin form a grid, so their bilinear weights factor
	// into a weight per map row times a weight per map column; summing the
	// weights of repeated rows and columns first reads each cell once.
	var rowBuf, colBuf [2 * maxMergedGrid]tap
	for ph := range r.OutH {
		rows := axisTaps(rowBuf[:0], y0+float64(ph)*binH, binH, gridH, h)
		for pw := range r.OutW {
			cols := axisTaps(colBuf[:0], x0+float64(pw)*binW, binW, gridW, w)
			acc := out[(ph*r.OutW+pw)*c:][:c]
			clear(acc)
			for _, ty := range rows {
				row := feature[ty.at*w*c:]
				wy := ty.weight * inv
				j := 0
				for ; j+1 < len(cols); j += 2 {
					w1, w2 := wy*cols[j].weight, wy*cols[j+1].weight
					f1 := row[cols[j].at*c:][:len(acc)]
					f2 := row[cols[j+1].at*c:][:len(acc)]
					for k, a := range acc {
						acc[k] = a + w1*f1[k] + w2*f2[k]
					}
				}
				if j < len(cols) {
					w1 := wy * cols[j].weight
					f1 := row[cols[j].at*c:][:len(acc)]
					for k, a := range acc {
						acc[k] = a + w1*f1[k]
					}
				}
			}
		}
	}
}

// maxMergedGrid is the most samples a bin side may have for poolOne to
// merge their weights in fixed buffers; more take poolSamples.
const maxMergedGrid = 8

// tap is one map row or column and the summed weight of a bin's samples on it.
type tap struct {
	at     int
	weight float32
}

// axisTaps appends the rows (or columns) that the grid samples of one bin
// starting at start, bin cells long, read on an axis of n cells, with
// their summed bilinear weights. Samples more than a cell outside add nothing.
func axisTaps(taps []tap, start, bin float64, grid, n int) []tap {
	for i := range grid {
		v := start + (float64(i)+0.5)*bin/float64(grid)
		low, high, frac, ok := bilinearAxis(v, n)
		if !ok {
			continue
		}
		taps = addTap(taps, low, 1-frac)
		taps = addTap(taps, high, frac)
	}
	return taps
}

// addTap adds weight to cell at, merging with one of the last two taps,
// the only ones that can hold it since samples advance along the axis.
func addTap(taps []tap, at int, weight float32) []tap {
	for k := len(taps) - 1; k >= 0 && k >= len(taps)-2; k-- {
		if taps[k].at == at {
			taps[k].weight += weight
			return taps
		}
	}
	return append(taps, tap{at: at, weight: weight})
}

// poolSamples is poolOne sample by sample, for bins of many samples.
func (r RoIAlign) poolSamples(out, feature []float32, h, w, c int, x0, y0, binW, binH float64,
	gridW, gridH int, inv float32) {
	for ph := range r.OutH {
		for pw := range r.OutW {
			acc := out[(ph*r.OutW+pw)*c:][:c]
			clear(acc)
			for iy := range gridH {
				y := y0 + float64(ph)*binH + (float64(iy)+0.5)*binH/float64(gridH)
				yLow, yHigh, ly, ok := bilinearAxis(y, h)
				if !ok {
					continue
				}
				for ix := range gridW {
					x := x0 + float64(pw)*binW + (float64(ix)+0.5)*binW/float64(gridW)
					xLow, xHigh, lx, ok := bilinearAxis(x, w)
					if !ok {
						continue
					}
					hy, hx := 1-ly, 1-lx
					w1, w2, w3, w4 := hy*hx, hy*lx, ly*hx, ly*lx
					f1 := feature[(yLow*w+xLow)*c:][:len(acc)]
					f2 := feature[(yLow*w+xHigh)*c:][:len(acc)]
					f3 := feature[(yHigh*w+xLow)*c:][:len(acc)]
					f4 := feature[(yHigh*w+xHigh)*c:][:len(acc)]
					for k, a := range acc {
						acc[k] = a + w1*f1[k] + w2*f2[k] + w3*f3[k] + w4*f4[k]
					}
				}
			}
			for k := range acc {
				acc[k] *= inv
			}
		}
	}
}

// bilinearAxis returns, for coordinate v on an axis of n cells, the two
// neighbouring cells and the weight of the upper one; ok is false when v is
// more than one cell outside the map (or NaN), where the sample counts as 0.
func bilinearAxis(v float64, n int) (low, high int, frac float32, ok bool) {
	if !(v >= -1 && v <= float64(n)) {
		return 0, 0, 0, false
	}
	v = math.Max(v, 0)
	low = int(v)
	if low >= n-1 {
		return n - 1, n - 1, 0, true
	}
	return low, low + 1, float32(v - float64(low)), true
}

// ceilCount is torchvision's adaptive sample count, ceil(size), as an int;
// 0 for a size that is not positive or not finite.
func ceilCount(size float64) int {
	if !(size > 0) || math.IsInf(size, 0) {
		return 0
	}
	return int(math.Ceil(size))
}

// AxisWeights writes the RoI's pooling as two matrices, so that a model can
// pool with two matrix products: the pooled value of bin (i, j) is
// sum over y, x of wy[i*h+y] * wx[j*w+x] * feature[y, x]. wy must hold
// OutH*h values and wx OutW*w; both are overwritten. Pool computes the same
// numbers (it is the same sampling, factored per axis: the validity of a
// sample and its bilinear weights are products of a row and a column part).
// The error reports sizes that do not agree.
func (r RoIAlign) AxisWeights(wy, wx []float32, h, w int, roi Box) error {
	if r.OutH <= 0 || r.OutW <= 0 || h <= 0 || w <= 0 {
		return fmt.Errorf("roi align: output %dx%d on a %dx%d map: all must be positive",
			r.OutH, r.OutW, h, w)
	}
	if len(wy) != r.OutH*h || len(wx) != r.OutW*w {
		return fmt.Errorf("roi align: weights of %d and %d values, want %d and %d",
			len(wy), len(wx), r.OutH*h, r.OutW*w)
	}
	offset := 0.0
	if r.Aligned {
		offset = 0.5
	}
	x0 := roi.X1*r.SpatialScale - offset
	y0 := roi.Y1*r.SpatialScale - offset
	roiW := roi.X2*r.SpatialScale - offset - x0
	roiH := roi.Y2*r.SpatialScale - offset - y0
	if !r.Aligned {
		roiW, roiH = math.Max(roiW, 1), math.Max(roiH, 1)
	}
	binW, binH := roiW/float64(r.OutW), roiH/float64(r.OutH)
	gridW, gridH := r.SamplingRatio, r.SamplingRatio
	if r.SamplingRatio <= 0 {
		gridW, gridH = ceilCount(binW), ceilCount(binH)
	}

	clear(wy)
	clear(wx)
	var taps []tap
	for i := range r.OutH {
		taps = axisTaps(taps[:0], y0+float64(i)*binH, binH, gridH, h)
		for _, t := range taps {
			wy[i*h+t.at] += t.weight / float32(max(gridH, 1))
		}
	}
	for j := range r.OutW {
		taps = axisTaps(taps[:0], x0+float64(j)*binW, binW, gridW, w)
		for _, t := range taps {
			wx[j*w+t.at] += t.weight / float32(max(gridW, 1))
		}
	}
	return nil
}
