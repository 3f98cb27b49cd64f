/*
 * A minimal TFLite external delegate plugin for tests: it claims no
 * operator (TFLite keeps running every one on the CPU), and when TFLite
 * prepares it, it appends a line to the file named by its "marker" option,
 * so a test can see that the plugin was loaded and applied. With the option
 * "fail" set it refuses to create a delegate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tensorflow/lite/core/c/common.h>

struct marker {
	TfLiteDelegate delegate; /* first, so the pointers convert */
	char path[512];
};

static TfLiteStatus prepare(TfLiteContext* context, TfLiteDelegate* delegate) {
	struct marker* m = (struct marker*)delegate;
	(void)context;
	if (m->path[0]) {
		FILE* f = fopen(m->path, "a");
		if (f) {
			fputs("prepared\n", f);
			fclose(f);
		}
	}
	return kTfLiteOk;
}

TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t n,
                                              void (*report_error)(const char*)) {
	struct marker* m = calloc(1, sizeof *m);
	if (!m) return NULL;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i], "marker") == 0) {
			snprintf(m->path, sizeof m->path, "%s", values[i]);
		} else if (strcmp(keys[i], "fail") == 0) {
			if (report_error) report_error("marker delegate: told to fail");
			free(m);
			return NULL;
		}
	}
	m->delegate.Prepare = prepare;
	return &m->delegate;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) { free(delegate); }
