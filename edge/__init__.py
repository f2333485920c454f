"""hh.edge: the preprocessing contract, the TFLite runtime wrapper and the camera loop.

numpy + OpenCV + LiteRT only: this package must import on a device without TensorFlow.
"""
