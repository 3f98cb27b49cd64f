// Command probe checks that a cgo build of maskwatch's native stack works on
// its target: it decodes an image with GoCV (OpenCV's imgcodecs), resizes it
// to a TFLite model's input, runs the model with go-tflite, and reads frames
// of a video through OpenCV's videoio (FFmpeg). It prints one JSON line that
// cross's tests compare between the amd64 build and the arm64 build run
// under qemu-aarch64.
//
// Usage:
//
//	probe --model MODEL.tflite --image IMAGE.jpg [--video FILE --frames N]
//
// The model must take one NHWC float32 input of 3 channels (RGB in [0, 1]);
// its float32 outputs are printed. Exit status: 0 success, 1 failure, 2 usage.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"os"

	"github.com/mattn/go-tflite"
	"github.com/spf13/pflag"
	"gocv.io/x/gocv"
)

// Report is what probe prints.
type Report struct {
	OpenCV string `json:"opencv"`
	// Width and Height are the decoded image's size.
	Width  int `json:"width"`
	Height int `json:"height"`
	// Outputs are the model's float32 outputs, flattened, one slice an output.
	Outputs [][]float32 `json:"outputs"`
	// FrameMeans are the mean pixel values (all channels) of the video frames read.
	FrameMeans []float64 `json:"frame_means,omitempty"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("probe", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "TFLite model `FILE` (NHWC float32 input, 3 channels)")
	imagePath := fs.String("image", "", "image `FILE` to decode and run the model on")
	video := fs.String("video", "", "video `FILE` to read frames from (optional)")
	frames := fs.Int("frames", 5, "`N` video frames to read")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *model == "" || *imagePath == "" || *frames < 1 {
		fmt.Fprintln(stderr, "probe: want --model FILE --image FILE, and --frames of at least 1")
		return 2
	}

	rep := Report{OpenCV: gocv.OpenCVVersion()}
	if err := infer(&rep, *model, *imagePath); err != nil {
		fmt.Fprintf(stderr, "probe: %v\n", err)
		return 1
	}
	if *video != "" {
		means, err := frameMeans(*video, *frames)
		if err != nil {
			fmt.Fprintf(stderr, "probe: %v\n", err)
			return 1
		}
		rep.FrameMeans = means
	}
	if err := json.NewEncoder(stdout).Encode(rep); err != nil {
		fmt.Fprintf(stderr, "probe: %v\n", err)
		return 1
	}
	return 0
}

// infer decodes path, fits it to the model's input and runs the model.
func infer(rep *Report, modelPath, path string) error {
	img := gocv.IMRead(path, gocv.IMReadColor)
	defer img.Close()
	if img.Empty() {
		return fmt.Errorf("image %s: OpenCV cannot decode it", path)
	}
	rep.Width, rep.Height = img.Cols(), img.Rows()

	model := tflite.NewModelFromFile(modelPath)
	if model == nil {
		return fmt.Errorf("model %s: TFLite cannot load it", modelPath)
	}
	defer model.Delete()
	opts := tflite.NewInterpreterOptions()
	defer opts.Delete()
	opts.SetNumThread(1)
	interp := tflite.NewInterpreter(model, opts)
	if interp == nil {
		return fmt.Errorf("model %s: TFLite cannot build an interpreter", modelPath)
	}
	defer interp.Delete()
	if st := interp.AllocateTensors(); st != tflite.OK {
		return fmt.Errorf("model %s: allocating tensors: status %v", modelPath, st)
	}

	in := interp.GetInputTensor(0)
	shape := in.Shape()
	if in.Type() != tflite.Float32 || len(shape) != 4 || shape[3] != 3 {
		return fmt.Errorf("model %s: input %v of type %v, want [1 H W 3] float32",
			modelPath, shape, in.Type())
	}
	pixels, err := rgbFloats(img, shape[2], shape[1])
	if err != nil {
		return err
	}
	if err := in.SetFloat32s(pixels); err != nil {
		return fmt.Errorf("model %s: setting the input: %w", modelPath, err)
	}
	if st := interp.Invoke(); st != tflite.OK {
		return fmt.Errorf("model %s: invoke: status %v", modelPath, st)
	}
	for i := 0; i < interp.GetOutputTensorCount(); i++ {
		out := interp.GetOutputTensor(i)
		values := out.Float32s()
		if values == nil {
			return fmt.Errorf("model %s: output %d is %v, want float32", modelPath, i, out.Type())
		}
		rep.Outputs = append(rep.Outputs, append([]float32(nil), values...))
	}
	return nil
}

// rgbFloats resizes img to w x h and returns its RGB values scaled to [0, 1].
func rgbFloats(img gocv.Mat, w, h int) ([]float32, error) {
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(img, &small, image.Pt(w, h), 0, 0, gocv.InterpolationLinear)
	rgb := gocv.NewMat()
	defer rgb.Close()
	gocv.CvtColor(small, &rgb, gocv.ColorBGRToRGB)
	scaled := gocv.NewMat()
	defer scaled.Close()
	rgb.ConvertToWithParams(&scaled, gocv.MatTypeCV32FC3, 1.0/255, 0)
	values, err := scaled.DataPtrFloat32()
	if err != nil {
		return nil, fmt.Errorf("image as floats: %w", err)
	}
	return append([]float32(nil), values...), nil
}

// frameMeans reads n frames of a video file and returns each one's mean value.
func frameMeans(path string, n int) ([]float64, error) {
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", path, err)
	}
	defer vc.Close()
	frame := gocv.NewMat()
	defer frame.Close()
	var means []float64
	for len(means) < n {
		if !vc.Read(&frame) || frame.Empty() {
			break
		}
		m := frame.Mean()
		means = append(means, (m.Val1+m.Val2+m.Val3)/3)
	}
	if len(means) == 0 {
		return nil, errors.New("video " + path + ": no frame could be read")
	}
	return means, nil
}
