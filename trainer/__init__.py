"""hh.trainer: load class folders, build models, train (needs TensorFlow)."""
