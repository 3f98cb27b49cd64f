#ifdef __cplusplus
extern "C" {
#endif

/* maskwatch_named_window creates an OpenCV HighGUI window with flags, which
   gocv's NewWindow does not take (it always asks for the toolbar and status
   bar of the Qt backend). */
void maskwatch_named_window(const char* name, int flags);

#ifdef __cplusplus
}
#endif
