"""Applications on top of :mod:`edge_runtime`: camera object detection, keyword spotting and
fixed-rate robot control. They use the runtime only and never import TensorFlow.
"""
