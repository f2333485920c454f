"""One verdict per plant from several of its leaves.

Agronomists judge a plant from several leaves, not one: in a field trial with cassava experts, a
phone app's accuracy rose from 65% to 74-88% when six leaves per plant were scanned (Mrisho et
al. 2020, Front. Plant Sci. 11:590889). A single leaf can be the wrong one: young, damaged by
something else, badly lit.

The verdict averages the leaves' probabilities over the model's classes, each leaf's taken among
the classes alone (a soft vote: a leaf that is sure weighs more than one that hesitates). Leaves
answered `retake` (the frame was too dark, blurry, ...) or `unknown` (not like the training
leaves), and photos that cannot be read, say nothing about the plant's disease: they are left
out, and the verdict says which and why. numpy only.

On a device, PlantSurvey holds the plant being scanned: the live page's "new plant", "add leaf"
and "verdict" buttons.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .spec import UNKNOWN_LABEL

# Leaves one plant may have on a device: a survey takes about six; the bound keeps a stuck
# button (or a stranger's loop of requests) from growing the device's memory.
MAX_LEAVES = 50


@dataclass(frozen=True)
class Leaf:
    """One leaf's answer, as the device gave it."""

    name: str  # a file, or "leaf 3"
    label: str
    probabilities: np.ndarray  # one per model label, in the model's order
    retake: str | None = None  # the quality gate's reason, when the photo should be retaken
    unreadable: str | None = None  # why the photo could not be read (then nothing else counts)


@dataclass(frozen=True)
class PlantVerdict:
    label: str  # a class, or UNKNOWN_LABEL when no leaf could be used
    probability: float
    probabilities: dict[str, float]  # the classes' mean probabilities over the leaves used
    votes: dict[str, int]  # how many of the leaves used answered each class
    used: tuple[str, ...]  # the leaves the verdict is from
    left_out: tuple[tuple[str, str], ...]  # (leaf, why)

    def line(self) -> str:
        if not self.used:
            return f"plant: unknown (no usable leaf of {len(self.left_out)}; retake them or photograph other leaves)"
        votes = ", ".join(f"{name} {count}" for name, count in self.votes.items() if count)
        left = f"; left out {len(self.left_out)} ({', '.join(why for _, why in self.left_out)})" if self.left_out else ""
        leaves = "leaf" if len(self.used) == 1 else "leaves"
        return f"plant: {self.label} {self.probability:.3f} from {len(self.used)} {leaves} ({votes}){left}"

    def as_dict(self) -> dict:
        return {
            "type": "plant",
            "label": self.label,
            "probability": round(self.probability, 5),
            "probabilities": {name: round(p, 5) for name, p in self.probabilities.items()},
            "votes": self.votes,
            "used": list(self.used),
            "left_out": [{"leaf": leaf, "why": why} for leaf, why in self.left_out],
        }


def plant_verdict(leaves: list[Leaf], labels: tuple[str, ...]) -> PlantVerdict:
    """The plant's verdict from its leaves' answers (`labels`: the model's labels, in order)."""
    classes = [i for i, name in enumerate(labels) if name != UNKNOWN_LABEL]
    used, left_out, rows = [], [], []
    for leaf in leaves:
        if leaf.unreadable:
            left_out.append((leaf.name, f"unreadable: {leaf.unreadable}"))
        elif leaf.retake:
            left_out.append((leaf.name, f"retake: {leaf.retake}"))
        elif leaf.label == UNKNOWN_LABEL:
            left_out.append((leaf.name, "unknown"))
        else:
            p = np.asarray(leaf.probabilities, np.float64)[classes]
            rows.append(p / p.sum() if p.sum() > 0 else np.full(len(classes), 1 / len(classes)))
            used.append(leaf.name)
    names = [labels[i] for i in classes]
    if not rows:
        return PlantVerdict(UNKNOWN_LABEL, 0.0, {}, {}, (), tuple(left_out))
    mean = np.mean(rows, axis=0)
    best = int(mean.argmax())
    votes = {name: 0 for name in names}
    for row in rows:
        votes[names[int(row.argmax())]] += 1
    return PlantVerdict(
        names[best],
        float(mean[best]),
        {name: float(p) for name, p in zip(names, mean)},
        votes,
        tuple(used),
        tuple(left_out),
    )


class LeafRefused(Exception):
    """The plant has MAX_LEAVES leaves already, or this frame is one of its leaves already."""


class PlantSurvey:
    """The plant being scanned on a device, one leaf at a time (thread-safe: the live page's
    requests come on the server's threads)."""

    def __init__(self, labels: tuple[str, ...]):
        self.labels = tuple(labels)
        self.number = 1
        self.leaves: list[Leaf] = []
        self.frames: set[int] = set()  # the frames its leaves are: a frame counts once
        self.logged = 0  # how many of its leaves the last logged verdict had
        self.lock = threading.Lock()

    def new_plant(self) -> None:
        """Start the next plant (the current one, with or without leaves, is done)."""
        with self.lock:
            self.number += 1
            self.leaves, self.frames, self.logged = [], set(), 0

    def add_leaf(self, label: str, probabilities: np.ndarray, retake: str | None, frame: int) -> PlantVerdict:
        """Add a frame's answer as the plant's next leaf; the verdict so far. Raises LeafRefused
        for a frame already added (the camera has not moved on: a stalled source, a double tap)."""
        with self.lock:
            if len(self.leaves) >= MAX_LEAVES:
                raise LeafRefused(f"plant {self.number} has {MAX_LEAVES} leaves already; start a new plant")
            if frame in self.frames:
                raise LeafRefused(f"frame {frame} is a leaf of plant {self.number} already; point the camera at the next leaf")
            self.frames.add(frame)
            name = f"leaf {len(self.leaves) + 1} (frame {frame})"
            self.leaves.append(Leaf(name, label, np.array(probabilities, np.float64), retake))
            return plant_verdict(self.leaves, self.labels)

    def status(self) -> dict:
        """{"plant": its number, "leaves": how many, "verdict": the verdict so far or None}."""
        with self.lock:
            verdict = plant_verdict(self.leaves, self.labels).as_dict() if self.leaves else None
            return {"plant": self.number, "leaves": len(self.leaves), "verdict": verdict}

    def verdict_to_log(self) -> tuple[bool, str | None]:
        """(whether the plant has leaves, its verdict line when it changed since the last one
        logged: 'plant 3: brown_spot 0.912 from 5 leaves (...)'). Repeated taps log one line."""
        with self.lock:
            if not self.leaves:
                return False, None
            if self.logged == len(self.leaves):
                return True, None
            self.logged = len(self.leaves)
            return True, f"plant {self.number}: " + plant_verdict(self.leaves, self.labels).line().removeprefix("plant: ")
