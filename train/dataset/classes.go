package dataset

import (
	"fmt"
	"slices"
	"strings"
)

// ClassMap maps the labels a data set writes ("True", "with_mask", ...) to the
// model's classes. Labels are matched without regard to case or surrounding
// spaces. The zero value maps nothing; readers treat it as TwoClass().
type ClassMap struct {
	Names  []string // model classes (background excluded); Object.Class indexes it
	Proper int      // index of the class meaning "mask worn properly" (drawn green); -1 if none

	labels map[string]int    // lower-case source label -> index into Names
	hints  map[string]string // lower-case source label -> why it does not map, and the fix
}

// TwoClass is the study's task: a mask worn properly, or not (no mask, or worn wrongly).
// True and with_mask map to proper; False, without_mask and mask_weared_incorrect map
// to not_proper.
func TwoClass() ClassMap {
	return ClassMap{
		Names:  []string{"proper", "not_proper"},
		Proper: 0,
		labels: map[string]int{
			"true":                  0,
			"with_mask":             0,
			"false":                 1,
			"without_mask":          1,
			"mask_weared_incorrect": 1,
		},
	}
}

// ThreeClass keeps the Pascal VOC data set's classes: with_mask, without_mask and
// mask_weared_incorrect; the file-name format's True maps to with_mask.
// Its False does not map: that format cannot tell a missing mask from one worn
// wrongly, so a record labelled False becomes a Problem that says to read the
// set with two classes.
func ThreeClass() ClassMap {
	return ClassMap{
		Names:  []string{"with_mask", "without_mask", "mask_weared_incorrect"},
		Proper: 0,
		labels: map[string]int{
			"true":                  0,
			"with_mask":             0,
			"without_mask":          1,
			"mask_weared_incorrect": 2,
		},
		hints: map[string]string{
			"false": "label False means without_mask or mask_weared_incorrect, " +
				"which three classes keep apart; read this set with two classes",
		},
	}
}

// ParseClassMap reads a class map from a command-line flag: "two", "three", or a
// mapping of source labels to classes such as
// "with_mask=proper,without_mask=not_proper,mask_weared_incorrect=not_proper".
// In a mapping the classes are numbered in order of first appearance, and Proper
// is the first class named proper or with_mask, or -1 when there is none.
// A class may not be named background: the detector adds that class itself.
func ParseClassMap(spec string) (ClassMap, error) {
	switch strings.ToLower(strings.TrimSpace(spec)) {
	case "two", "2":
		return TwoClass(), nil
	case "three", "3":
		return ThreeClass(), nil
	case "":
		return ClassMap{}, fmt.Errorf("empty class map: use two, three or " +
			"label=class pairs such as True=proper,False=not_proper")
	}

	m := ClassMap{Proper: -1, labels: map[string]int{}}
	for entry := range strings.SplitSeq(spec, ",") {
		label, class, ok := strings.Cut(entry, "=")
		label, class = strings.TrimSpace(label), strings.TrimSpace(class)
		if !ok || label == "" || class == "" {
			return ClassMap{}, fmt.Errorf("class map %q: entry %q is not label=class; "+
				"use two, three or pairs such as True=proper,False=not_proper", spec, entry)
		}
		if strings.EqualFold(class, "background") {
			return ClassMap{}, fmt.Errorf("class map %q: background is the detector's own "+
				"class; map %s to another name", spec, label)
		}

		idx := slices.Index(m.Names, class)
		if idx < 0 {
			idx = len(m.Names)
			m.Names = append(m.Names, class)
		}
		key := strings.ToLower(label)
		if prev, seen := m.labels[key]; seen && prev != idx {
			return ClassMap{}, fmt.Errorf("class map %q: label %s maps to both %s and %s; "+
				"give each label one class", spec, label, m.Names[prev], class)
		}
		m.labels[key] = idx
	}

	for i, name := range m.Names {
		if strings.EqualFold(name, "proper") || strings.EqualFold(name, "with_mask") {
			m.Proper = i
			break
		}
	}
	return m, nil
}

// Lookup returns the class of a source label, ignoring case and surrounding spaces.
func (m ClassMap) Lookup(label string) (class int, ok bool) {
	class, ok = m.labels[strings.ToLower(strings.TrimSpace(label))]
	return class, ok
}

// IsZero reports whether m is the zero ClassMap, which maps no label.
func (m ClassMap) IsZero() bool {
	return len(m.Names) == 0 && m.labels == nil && m.hints == nil
}

// unknown explains why a label has no class, for a Problem's reason.
func (m ClassMap) unknown(label string) string {
	if hint, ok := m.hints[strings.ToLower(strings.TrimSpace(label))]; ok {
		return hint
	}
	known := make([]string, 0, len(m.labels))
	for l := range m.labels {
		known = append(known, l)
	}
	slices.Sort(known)
	return fmt.Sprintf("unknown class label %q: the class map knows %s; "+
		"pass a class map that names it", label, strings.Join(known, ", "))
}

// orDefault returns m, or TwoClass() when m is the zero value.
func (m ClassMap) orDefault() ClassMap {
	if m.IsZero() {
		return TwoClass()
	}
	return m
}
