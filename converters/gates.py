"""What a converted model must show before it ships, against its Keras source on held-out
images. stdlib only: the command's defaults come from here too.

- Top-1 agreement of at least MIN_AGREEMENT: quantization may flip an answer on an image at
  the boundary between two classes, not more.
- No probability more than MAX_PROB_DIFF from Keras's: int8 moves probabilities by
  quantization steps; a model 0.5 off has lost its meaning even where its top-1 answers still
  agree (the differences measured on hh's models are in BENCHMARKS.md).
- No class's recall more than MAX_RECALL_DROP below Keras's: overall agreement is dominated by
  the common classes, and a model that gets the rare disease wrong must not ship because the
  common class agrees.
"""

MIN_AGREEMENT = 0.98
MAX_RECALL_DROP = 0.05
MAX_PROB_DIFF = 0.25
# The share of the validation images the `unknown` answer's threshold keeps (hh.converters.unknown).
UNKNOWN_KEEP = 0.95
