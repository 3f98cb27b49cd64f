package frcnn

import (
	"testing"

	"github.com/maskwatch/maskwatch/models/net"
)

// The weights counted against the architectures' published sizes: ResNet50
// without its classifier has 23.5M, MobileNetV3-Large 2.97M.
func TestParamCounts(t *testing.T) {
	for _, tc := range []struct {
		backbone       net.Backbone
		minMil, maxMil float64
	}{{net.ResNet50, 23, 30}, {net.MobileNetV3Large, 2.9, 6}} {
		s1, s2, err := DefaultConfig(tc.backbone).Stages()
		if err != nil {
			t.Fatal(err)
		}
		total := float64(s1.Params()+s2.Params()) / 1e6
		t.Logf("%s: stage 1 %.2fM, stage 2 %.2fM, total %.2fM", tc.backbone,
			float64(s1.Params())/1e6, float64(s2.Params())/1e6, total)
		if total < tc.minMil || total > tc.maxMil {
			t.Errorf("%s: %.2fM weights, want %v..%vM", tc.backbone, total, tc.minMil, tc.maxMil)
		}
	}
}
