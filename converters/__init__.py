"""hh.converters: Keras -> TFLite in four quantizations, verified (needs TensorFlow)."""
