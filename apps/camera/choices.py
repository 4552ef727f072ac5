"""Names shared by the CLI and the decoders, importable without numpy or OpenCV."""

DECODERS = ("edgepilot", "yolo", "ssd", "blazeface")
DECODER_CHOICES = ("auto",) + DECODERS + ("yolov8", "yolov5", "yolo-end2end")
