"""Which score tells "not one of the classes": the candidates side by side on one run.

    .venv/bin/python bench/unknown.py demo/run [--json out.json]

For a run folder from hh-train (its Keras model, its recorded training and validation images),
each candidate score is computed on the validation images and on images that are not leaves;
its threshold keeps 95% of the validation images (as hh-convert calibrates it), and the table
gives, per group of non-leaf images, the share still answered as a leaf class (lower is better),
and the AUROC of leaves against all of them.

Non-leaf groups, made on the spot (no download):
  tuning (used to choose the score): noise, colour fields and gradients, stripes and checks,
      soil and clutter (the synthetic leaf set's backgrounds, without a leaf)
  held out (never used to choose or tune): photographs bundled with scikit-image (a cat, a
      person, coffee, a rocket, bricks, gravel, grass, coins, the moon, ...), whole and cropped,
      and faces from its LFW sample. pip install scikit-image to have them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from hh.edge.preprocess import to_model_rgb
from hh.trainer import synth

KEEP = 0.95
HH_SCORE = "hh: feature statistics at every stage"


def tuning_images(rng: np.random.Generator, per_group: int = 40) -> dict[str, list[np.ndarray]]:
    """BGR images of four kinds, 200-500 px a side."""

    def size():
        return tuple(int(v) for v in rng.integers(200, 501, 2))

    groups: dict[str, list[np.ndarray]] = {"noise": [], "colour": [], "pattern": [], "soil": []}
    for i in range(per_group):
        h, w = size()
        noise = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        if i % 2:
            noise = cv2.GaussianBlur(noise, (0, 0), float(rng.uniform(1, 8)))
            noise = cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX)
        groups["noise"].append(noise)
        h, w = size()
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = np.linspace(0, 1, w)[None, :, None] if i % 3 else np.zeros((1, 1, 1))
        field = (a * (1 - t) + b * t) * np.ones((h, 1, 1))
        groups["colour"].append(np.clip(field, 0, 255).astype(np.uint8))
        h, w = size()
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = rng.integers(0, 256, 3)
        period = int(rng.integers(6, 60))
        colour = rng.integers(0, 256, 3).tolist()
        if i % 3 == 0:
            for x in range(0, w, period):
                cv2.line(img, (x, 0), (x + int(rng.integers(-w // 2, w // 2)), h), colour, max(1, period // 3))
        elif i % 3 == 1:
            yy, xx = np.mgrid[0:h, 0:w]
            img[((yy // period) + (xx // period)) % 2 == 1] = colour
        else:
            for _ in range(int(rng.integers(10, 60))):
                centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                cv2.circle(img, centre, int(rng.integers(3, 40)), rng.integers(0, 256, 3).tolist(), -1)
        groups["pattern"].append(img)
        h, w = size()
        groups["soil"].append(np.clip(synth._background(rng, h, w), 0, 255).astype(np.uint8))
    return groups


def held_out_images(rng: np.random.Generator, crops: int = 2) -> dict[str, list[np.ndarray]]:
    """scikit-image's bundled photographs, whole and `crops` random crops each; LFW faces."""
    try:
        import skimage.data
    except ImportError:
        return {}
    folder = Path(skimage.data.__file__).parent
    photos = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".png", ".jpg"):
            continue
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None or min(image.shape[:2]) < 64:
            continue
        photos.append(image)
        h, w = image.shape[:2]
        for _ in range(crops):
            ch, cw = int(h * rng.uniform(0.4, 0.7)), int(w * rng.uniform(0.4, 0.7))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            photos.append(image[y : y + ch, x : x + cw].copy())
    groups = {"photos": photos}
    lfw = folder / "lfw_subset.npy"
    if lfw.is_file():
        faces = np.load(lfw)[:: max(1, len(np.load(lfw)) // 30)][:30]
        groups["faces"] = [cv2.cvtColor((f * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR) for f in faces]
    return groups


def candidate_scores(features: np.ndarray, logits: np.ndarray, stats: dict) -> dict[str, np.ndarray]:
    """Each candidate's "how unlike the classes" score for N images (higher: more unknown)."""
    shifted = logits - logits.max(1, keepdims=True)
    softmax = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
    lse = logits.max(1) + np.log(np.exp(shifted).sum(1))
    centred = features[:, None, :] - stats["means"][None]  # [N, C, D]
    maha = np.einsum("ncd,de,nce->nc", centred, stats["precision"], centred).min(1)
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return {
        "max probability": -softmax.max(1),
        "max logit": -logits.max(1),
        "energy": -lse,
        "mahalanobis": maha,
        "cosine to class mean": -(unit @ stats["unit_means"].T).max(1),
        "nearest training image (cosine)": -(unit @ stats["unit_train"].T).max(1),
    }


def feature_stats(features: np.ndarray, labels: np.ndarray, classes: int) -> dict:
    means = np.stack([features[labels == c].mean(0) for c in range(classes)])
    centred = features - means[labels]
    cov = centred.T @ centred / len(features)
    cov += np.eye(len(cov)) * 1e-3 * np.trace(cov) / len(cov)
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    unit_means = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return {"means": means, "precision": np.linalg.inv(cov), "unit_means": unit_means, "unit_train": unit}


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(score of a non-leaf > score of a leaf), ties half."""
    both = np.concatenate([inside, outside])
    ranks = np.argsort(np.argsort(both, kind="stable"), kind="stable").astype(np.float64) + 1
    # average ranks for ties
    order = np.argsort(both, kind="stable")
    sorted_scores = both[order]
    i = 0
    while i < len(both):
        j = i
        while j + 1 < len(both) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j + 2) / 2
        i = j + 1
    r_out = ranks[len(inside) :].sum()
    return float((r_out - len(outside) * (len(outside) + 1) / 2) / (len(inside) * len(outside)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import keras

    from hh.converters.pipeline import recorded_images, resolve_source
    from hh.converters.tflite import score_head, score_weights
    from hh.converters.unknown import feature_model, fit_unknown, score_tensor
    from hh.trainer.data import load_images

    source = resolve_source(args.run)
    spec = source.spec
    model = keras.models.load_model(source.model_path, compile=False)
    features_at, head = score_head(model)
    body = keras.Model(model.inputs, features_at)
    kernel, bias = score_weights(head)

    def run(images):
        f = body.predict(np.asarray(images, np.float32), batch_size=32, verbose=0).astype(np.float64)
        return f, f @ kernel + bias

    train_images, train_labels = load_images(recorded_images(source, "train", "calib_dir"), spec)
    val_images, val_labels = load_images(recorded_images(source, "validation", "eval_dir"), spec)
    f_train, _ = run(train_images)
    stats = feature_stats(f_train, train_labels, spec.num_classes)
    f_val, l_val = run(val_images)
    inside = candidate_scores(f_val, l_val, stats)
    # hh's own: fitted as hh-convert fits it (float, as the Keras model computes it).
    fitted = fit_unknown(model, train_images, val_images)
    features = feature_model(model)
    hh_score = keras.Model(features.inputs, score_tensor(features.outputs[1:], fitted.stages))

    def stage_score(images):
        return hh_score.predict(np.asarray(images, np.float32), batch_size=32, verbose=0).reshape(-1)

    inside[HH_SCORE] = stage_score(val_images)

    rng = np.random.default_rng(args.seed)
    groups = {**tuning_images(rng), **held_out_images(rng)}
    outside = {}
    for name, images in groups.items():
        rgb = np.stack([to_model_rgb(image, spec) for image in images])
        outside[name] = candidate_scores(*run(rgb), stats)
        outside[name][HH_SCORE] = stage_score(rgb)

    result = {"run": str(args.run), "validation_images": len(val_images), "keep": KEEP, "groups": {}, "scores": {}}
    print(f"{args.run}: {spec.num_classes} classes, {len(val_images)} validation images; threshold keeps {KEEP:.0%} of them")
    print("share of non-leaf images still answered as a leaf class (lower is better):")
    names = list(groups)
    header = f"{'score':34s}" + "".join(f"{n:>9s}" for n in names) + f"{'tuning':>9s}{'held out':>9s}{'AUROC':>7s}"
    print(header)
    for score in inside:
        threshold = np.quantile(inside[score], KEEP)
        accepted = {n: float(np.mean(outside[n][score] <= threshold)) for n in names}
        tuning = np.concatenate([outside[n][score] for n in ("noise", "colour", "pattern", "soil")])
        held = [outside[n][score] for n in names if n in ("photos", "faces")]
        held_rate = float(np.mean(np.concatenate(held) <= threshold)) if held else float("nan")
        everything = np.concatenate([outside[n][score] for n in names])
        area = auroc(inside[score], everything)
        tuning_rate = float(np.mean(tuning <= threshold))
        print(f"{score:34s}" + "".join(f"{accepted[n]:9.3f}" for n in names) + f"{tuning_rate:9.3f}{held_rate:9.3f}{area:7.3f}")
        result["scores"][score] = {"accepted": accepted, "tuning": tuning_rate, "held_out": held_rate, "auroc": area}
    result["groups"] = {n: len(groups[n]) for n in names}
    print("images per group: " + ", ".join(f"{n} {len(groups[n])}" for n in names))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
