"""Model conversion: Keras / SavedModel -> TFLite (fp32, fp16, dynamic, int8, 16x8) and ONNX.

Will hold the conversion workflow (load -> calibrate -> convert -> validate -> export) and the
report card that measures each variant through :mod:`edge_runtime`.
"""
