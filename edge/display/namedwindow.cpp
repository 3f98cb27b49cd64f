//go:build cgo

#include <opencv2/highgui.hpp>
#include "namedwindow.h"

void maskwatch_named_window(const char* name, int flags) {
    cv::namedWindow(name, flags);
}
