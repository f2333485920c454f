"""Probabilities that mean what they say: how far they are from it, and the one number that fixes it.

A network trained to a low loss on few images is over-confident: of the answers it gives at
0.95, far fewer than 95% are right. The expected calibration error (ECE) measures it: the
answers are grouped by their probability into equal-width bins, and the gaps between each
bin's mean probability and its accuracy are averaged, weighted by the bin's share. Temperature
scaling (Guo et al. 2017) divides the logits by one number T, fitted on held-out images by
negative log-likelihood: it changes no top-1 answer (dividing by T > 0 keeps the order) and, on
the networks measured there, removes most of the error. hh-convert folds T into the model's last
layer, so every reader of the file gets calibrated probabilities with nothing to apply.

numpy and OpenCV only.
"""

from __future__ import annotations

import cv2
import numpy as np

BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)


def expected_calibration_error(probabilities: np.ndarray, truth, bins: int = BINS) -> float:
    """ECE of the top-1 answers of `probabilities` [N, C] against the true class indexes."""
    probabilities = np.asarray(probabilities, np.float64)
    truth = np.asarray(truth, np.int64)
    if len(probabilities) == 0:
        return 0.0
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == truth
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(float(confidence[inside].mean()) - float(correct[inside].mean()))
    return float(error)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(np.asarray(logits, np.float64)))


def fit_temperature(logits: np.ndarray, truth) -> float:
    """The T > 0 that minimises the negative log-likelihood of softmax(logits / T) on these
    images: a golden-section search over log T (the likelihood is unimodal in it).

    The true class is taken as certain only up to Laplace's rule of succession, (n+1)/(n+2) for
    n images: when every validation image is right, plain likelihood has no minimum (T -> 0,
    every answer 1.0), a certainty a few hundred images cannot give."""
    logits = np.asarray(logits, np.float64)
    truth = np.asarray(truth, np.int64)
    rows = np.arange(len(truth))
    doubt = 1.0 / (len(truth) + 2)

    def nll(log_t: float) -> float:
        log_p = log_softmax(logits / np.exp(log_t))
        return float(-((1 - doubt) * log_p[rows, truth] + doubt * log_p.mean(1)).mean())

    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    ratio = (np.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(a), nll(b)
    for _ in range(80):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    return float(np.exp((low + high) / 2))


def calibration_summary(probabilities: np.ndarray, truth) -> dict:
    """The expected calibration error of `probabilities`, the temperature that would fit them
    best (from their logarithms: a softmax's logits up to a constant), and the error after it."""
    probabilities = np.asarray(probabilities, np.float64)
    if len(probabilities) == 0:
        return {"expected_calibration_error": 0.0, "temperature": 1.0, "after_temperature": 0.0}
    log_p = np.log(np.maximum(probabilities, 1e-30))
    temperature = fit_temperature(log_p, truth)
    return {
        "expected_calibration_error": round(expected_calibration_error(probabilities, truth), 4),
        "temperature": round(temperature, 4),
        "after_temperature": round(expected_calibration_error(softmax(log_p / temperature), truth), 4),
    }


def reliability_image(probabilities: np.ndarray, truth, title: str = "", bins: int = 10) -> np.ndarray:
    """A reliability diagram (BGR): per bin of top-1 probability, the accuracy as a bar next to
    the diagonal a calibrated model would follow; the bar's width shows how many answers."""
    size, margin = 360, 40
    image = np.full((size + 2 * margin, size + 2 * margin, 3), 255, np.uint8)
    probabilities = np.asarray(probabilities, np.float64)
    confidence = probabilities.max(1) if len(probabilities) else np.zeros(0)
    correct = probabilities.argmax(1) == np.asarray(truth) if len(probabilities) else np.zeros(0, bool)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    cell = size // bins
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        accuracy = float(correct[inside].mean())
        share = float(inside.mean())
        x0 = margin + b * cell
        shade = int(230 - 160 * min(1.0, share * 4))
        cv2.rectangle(image, (x0 + 2, margin + size - int(accuracy * size)), (x0 + cell - 2, margin + size), (shade, 120, 40), -1)
    cv2.line(image, (margin, margin + size), (margin + size, margin), (60, 60, 200), 2, cv2.LINE_AA)
    cv2.rectangle(image, (margin, margin), (margin + size, margin + size), (0, 0, 0), 1)
    ece = expected_calibration_error(probabilities, truth) if len(probabilities) else 0.0
    cv2.putText(image, f"{title} ECE {ece:.3f}".strip(), (margin, margin - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.putText(
        image, "top-1 probability", (margin + size // 3, margin + size + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1
    )
    cv2.putText(image, "accuracy", (2, margin + size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    return image
