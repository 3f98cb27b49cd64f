package dataset

import (
	"slices"
	"strings"
	"testing"
)

func TestClassMapLookup(t *testing.T) {
	two, three := TwoClass(), ThreeClass()
	tests := []struct {
		m      ClassMap
		label  string
		class  int
		mapped bool
	}{
		{two, "True", 0, true},
		{two, "true", 0, true},
		{two, " with_mask ", 0, true},
		{two, "False", 1, true},
		{two, "without_mask", 1, true},
		{two, "Mask_Weared_Incorrect", 1, true},
		{two, "maybe", 0, false},
		{two, "", 0, false},
		{three, "True", 0, true},
		{three, "with_mask", 0, true},
		{three, "without_mask", 1, true},
		{three, "mask_weared_incorrect", 2, true},
		{three, "False", 0, false},
	}
	for _, tt := range tests {
		class, ok := tt.m.Lookup(tt.label)
		if ok != tt.mapped || (ok && class != tt.class) {
			t.Errorf("%v.Lookup(%q) = %d, %v; want %d, %v",
				tt.m.Names, tt.label, class, ok, tt.class, tt.mapped)
		}
	}

	if two.Names[two.Proper] != "proper" || three.Names[three.Proper] != "with_mask" {
		t.Errorf("Proper: two %d, three %d", two.Proper, three.Proper)
	}
	if why := three.unknown("False"); !strings.Contains(why, "two classes") {
		t.Errorf("ThreeClass's reason for False is %q; want it to say to use two classes", why)
	}
	if why := two.unknown("Maybe"); !strings.Contains(why, `"Maybe"`) ||
		!strings.Contains(why, "with_mask") {
		t.Errorf("TwoClass's reason for Maybe is %q; want the label and the known labels", why)
	}
}

func TestParseClassMap(t *testing.T) {
	tests := []struct {
		spec   string
		names  []string
		proper int
		lookup map[string]int // label -> class; -1 for a label that must not map
		err    string
	}{
		{spec: "two", names: []string{"proper", "not_proper"}, proper: 0,
			lookup: map[string]int{"True": 0, "mask_weared_incorrect": 1}},
		{spec: " Three ", names: []string{"with_mask", "without_mask", "mask_weared_incorrect"},
			proper: 0, lookup: map[string]int{"without_mask": 1, "False": -1}},
		{
			spec:   "with_mask=proper,without_mask=not_proper,mask_weared_incorrect=not_proper",
			names:  []string{"proper", "not_proper"},
			proper: 0,
			lookup: map[string]int{"WITH_MASK": 0, "mask_weared_incorrect": 1, "True": -1},
		},
		{
			spec:   "without_mask = bare, True = with_mask, False=bare",
			names:  []string{"bare", "with_mask"},
			proper: 1,
			lookup: map[string]int{"true": 1, "false": 0, "without_mask": 0},
		},
		{spec: "a=x,b=y", names: []string{"x", "y"}, proper: -1,
			lookup: map[string]int{"A": 0, "b": 1, "c": -1}},
		{spec: "a=x,A=x", names: []string{"x"}, proper: -1, lookup: map[string]int{"a": 0}},
		{spec: "", err: "empty class map"},
		{spec: "four", err: "not label=class"},
		{spec: "a=x,,b=y", err: "not label=class"},
		{spec: "a=", err: "not label=class"},
		{spec: "=x", err: "not label=class"},
		{spec: "a=x,a=y", err: "maps to both x and y"},
		{spec: "a=background", err: "background"},
	}
	for _, tt := range tests {
		m, err := ParseClassMap(tt.spec)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseClassMap(%q) error %v; want one with %q", tt.spec, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseClassMap(%q): %v", tt.spec, err)
			continue
		}
		if !slices.Equal(m.Names, tt.names) || m.Proper != tt.proper {
			t.Errorf("ParseClassMap(%q) = %v proper %d; want %v proper %d",
				tt.spec, m.Names, m.Proper, tt.names, tt.proper)
		}
		for label, want := range tt.lookup {
			class, ok := m.Lookup(label)
			if want < 0 && ok || want >= 0 && (!ok || class != want) {
				t.Errorf("ParseClassMap(%q).Lookup(%q) = %d, %v; want %d",
					tt.spec, label, class, ok, want)
			}
		}
	}
}

func TestClassMapIsZero(t *testing.T) {
	if !(ClassMap{}).IsZero() {
		t.Error("ClassMap{}.IsZero() = false")
	}
	for _, m := range []ClassMap{TwoClass(), ThreeClass()} {
		if m.IsZero() {
			t.Errorf("%v.IsZero() = true", m.Names)
		}
	}
	if got := (ClassMap{}).orDefault(); !slices.Equal(got.Names, TwoClass().Names) {
		t.Errorf("the zero ClassMap reads as %v; want TwoClass", got.Names)
	}
}
