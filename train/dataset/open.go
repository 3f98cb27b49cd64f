package dataset

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotDataSet is wrapped by the error Open and OpenTree return for a path that
// holds no data set in a format they know.
var ErrNotDataSet = errors.New("no data set found: expected a COCO .json file, a folder " +
	"holding one, a Pascal VOC folder with images/ and annotations/, or a folder of " +
	"images named ID__[x, y, w, h]__True.jpg")

// Open reads the data set at path, detecting its format: a .json file, or a folder
// holding exactly one COCO JSON, is COCO; a folder with images/ and annotations/
// is Pascal VOC; a folder with at least one image named in the file-name format is
// read in that format. A folder holding two or more COCO files is an error that
// names them. A path in none of these forms is an error wrapping ErrNotDataSet.
func Open(path string, opt Options) (*Set, error) {
	format, target, err := detect(path)
	if err != nil {
		return nil, err
	}
	return read(format, target, opt)
}

// OpenTree reads every data set at or just below path: path itself when it is a
// data set (one Set), or else each immediate subfolder that is one, in name
// order, such as proper-mask's test and train. Subfolders that are no data set
// are passed over. A path that is not one and holds none is an error wrapping
// ErrNotDataSet.
func OpenTree(path string, opt Options) ([]*Set, error) {
	format, target, err := detect(path)
	if err == nil {
		set, err := read(format, target, opt)
		if err != nil {
			return nil, err
		}
		return []*Set{set}, nil
	}
	if !errors.Is(err, ErrNotDataSet) {
		return nil, err
	}

	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("open data sets: %w", err)
	}
	var sets []*Set
	for _, e := range entries { // os.ReadDir sorts by name
		sub := filepath.Join(path, e.Name())
		if info, err := os.Stat(sub); err != nil || !info.IsDir() {
			continue
		}
		format, target, err := detect(sub)
		if errors.Is(err, ErrNotDataSet) {
			continue
		}
		if err != nil {
			return nil, err
		}
		set, err := read(format, target, opt)
		if err != nil {
			return nil, err
		}
		sets = append(sets, set)
	}
	if len(sets) == 0 {
		return nil, fmt.Errorf("open data sets: %s and the folders in it: %w", path, ErrNotDataSet)
	}
	return sets, nil
}

// read reads target in format.
func read(format Format, target string, opt Options) (*Set, error) {
	switch format {
	case FormatCOCO:
		return ReadCOCO(target, opt)
	case FormatVOC:
		return ReadVOC(target, opt)
	default:
		return ReadFileNames(target, opt)
	}
}

// detect finds the format of the data set at path, and the file or folder to read.
func detect(path string) (Format, string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", "", fmt.Errorf("open data set: %w", err)
	}
	if !info.IsDir() {
		if strings.EqualFold(filepath.Ext(path), ".json") {
			return FormatCOCO, path, nil
		}
		return "", "", fmt.Errorf("open data set %s: %w", path, ErrNotDataSet)
	}

	if isDir(filepath.Join(path, "images")) && isDir(filepath.Join(path, "annotations")) {
		return FormatVOC, path, nil
	}

	entries, err := os.ReadDir(path)
	if err != nil {
		return "", "", fmt.Errorf("open data set: %w", err)
	}
	var cocos []string
	fileNames := false
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() && e.Type()&os.ModeSymlink == 0 {
			continue
		}
		if strings.EqualFold(filepath.Ext(name), ".json") && isCOCO(filepath.Join(path, name)) {
			cocos = append(cocos, name)
		}
		if _, err := ParseFileName(name); err == nil {
			fileNames = true
		}
	}
	switch {
	case len(cocos) == 1:
		return FormatCOCO, filepath.Join(path, cocos[0]), nil
	case len(cocos) > 1:
		return "", "", fmt.Errorf("open data set %s: it holds %d COCO files (%s); "+
			"open one of them", path, len(cocos), strings.Join(cocos, ", "))
	case fileNames:
		return FormatFileName, path, nil
	}
	return "", "", fmt.Errorf("open data set %s: %w", path, ErrNotDataSet)
}

// isDir reports whether path is a folder.
func isDir(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.IsDir()
}

// isCOCO reports whether the JSON file at path is an object with images and
// annotations, as a COCO instances file is.
func isCOCO(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var top struct {
		Images      json.RawMessage `json:"images"`
		Annotations json.RawMessage `json:"annotations"`
	}
	return json.Unmarshal(data, &top) == nil && top.Images != nil && top.Annotations != nil
}
