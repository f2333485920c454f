"""Run inside a separate venv with MediaPipe (it brings its own OpenCV and protobuf, which cannot
share hh's environment): classify images with an hh .tflite through MediaPipe Tasks' stock
ImageClassifier, which finds labels only through the model's standard metadata.

    python mediapipe_classify.py MODEL IMAGE [IMAGE ...]   -> one JSON line per image
"""

import json
import sys

import mediapipe as mp
from mediapipe.tasks import python as mp_python
from mediapipe.tasks.python import vision

model, images = sys.argv[1], sys.argv[2:]
options = vision.ImageClassifierOptions(base_options=mp_python.BaseOptions(model_asset_path=model), max_results=1)
with vision.ImageClassifier.create_from_options(options) as classifier:
    for path in images:
        top = classifier.classify(mp.Image.create_from_file(path)).classifications[0].categories[0]
        print(json.dumps({"path": path, "label": top.category_name, "score": top.score}))
