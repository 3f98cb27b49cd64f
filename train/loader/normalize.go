package loader

import (
	"fmt"
	"math"
)

// Normalize is the per-channel standardisation applied to RGB values in [0, 1]:
// out = (in - Mean) / Std, channels in R, G, B order. Training and inference must
// use the same numbers; ImageNet gives the default.
type Normalize struct {
	Mean, Std [3]float32
}

// ImageNet returns the ImageNet statistics that most vision models use:
// mean 0.485, 0.456, 0.406 and standard deviation 0.229, 0.224, 0.225.
func ImageNet() Normalize {
	return Normalize{
		Mean: [3]float32{0.485, 0.456, 0.406},
		Std:  [3]float32{0.229, 0.224, 0.225},
	}
}

// Validate reports a Std that is not positive and finite, or a Mean that is not
// finite, naming the field and the fix.
func (n Normalize) Validate() error {
	for c, name := range [3]string{"R", "G", "B"} {
		m, s := float64(n.Mean[c]), float64(n.Std[c])
		if math.IsNaN(m) || math.IsInf(m, 0) {
			return fmt.Errorf("Normalize.Mean[%d] (%s) is %v: give a finite mean of "+
				"[0, 1] values, such as loader.ImageNet()'s", c, name, m)
		}
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("Normalize.Std[%d] (%s) is %v: give a positive standard "+
				"deviation, such as loader.ImageNet()'s", c, name, s)
		}
	}
	return nil
}

// table maps each 8-bit value of each channel to its normalised float32.
func (n Normalize) table() [3][256]float32 {
	var t [3][256]float32
	for c := range 3 {
		for v := range 256 {
			t[c][v] = (float32(v)/255 - n.Mean[c]) / n.Std[c]
		}
	}
	return t
}
