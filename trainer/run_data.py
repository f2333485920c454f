"""What a run trains on: the data folders listed, scanned, split, recorded, and fed to Keras.

A new run lists its folders (cheap, before anything is written), scans every image once
(hh.trainer.scan: bad files skipped or refused, odd ones normalized, model inputs kept in RAM
when they fit) and records the split in the run folder. A resumed run reads that record
instead and checks it against the disk. Either way the result is one `RunData`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..edge.errors import ParameterError, UserError
from ..edge.folders import ImageFolder, check_same_classes, list_image_folder, list_negatives, split_validation, with_class
from ..edge.spec import UNKNOWN_LABEL, PreprocessingSpec
from .config import TrainConfig
from .decode import DecodedImages
from .run_folder import RunFolder
from .scan import ScanReport, enforce, normalized_copy, scan_and_decode, scan_folder
from .split import RecordedSplit, SplitEntry, describe_drift

log = logging.getLogger("hh.train")
DEFAULT_VAL_SPLIT = 0.2


@dataclass
class RunData:
    train: ImageFolder
    val: ImageFolder
    spec: PreprocessingSpec
    split: RecordedSplit
    scan_reports: list[ScanReport] = field(default_factory=list)
    # The model inputs the scan decoded, when training keeps images in RAM: the first epoch
    # then decodes nothing again. Both splits may share one (a held-out fraction).
    decoded: dict[str, DecodedImages] = field(default_factory=dict)

    @property
    def bad_files(self) -> list[str]:
        """'path<TAB>problem' for every skipped file."""
        return [f"{v.path}\t{v.problem}" for r in self.scan_reports for v in (*r.bad, *r.ignored)]

    def describe_scan(self) -> str | None:
        if any(r.bad or r.normalized or r.ignored for r in self.scan_reports):
            return "\n".join(r.summary() for r in self.scan_reports)
        return None


def build_spec(config: TrainConfig, class_names: tuple[str, ...]) -> PreprocessingSpec:
    class_mode = config.class_mode
    # A class 'unknown' stays categorical even beside one other: hh-convert adds its score to that output.
    if class_mode == "auto":
        class_mode = "binary" if len(class_names) == 2 and UNKNOWN_LABEL not in class_names else "categorical"
    if class_mode == "binary" and len(class_names) != 2:
        raise ParameterError("class_mode", f"binary needs exactly 2 classes; {config.data_dir} has {len(class_names)}")
    return PreprocessingSpec(
        height=config.image_size,
        width=config.image_size,
        class_names=class_names,
        class_mode=class_mode,
        interpolation=config.interpolation,
        aspect=config.aspect,
    )


@dataclass
class Listing:
    """The data folders as listed (cheap: no image opened), checked before anything is written."""

    train: ImageFolder
    val: ImageFolder | None


def list_data(config: TrainConfig) -> Listing:
    # With negatives one class folder is enough: "is this a cassava leaf at all" is a classifier too.
    min_classes = 1 if config.negatives else 2
    train = list_image_folder(config.data_dir, "training folder", min_classes)
    val = None
    if config.val_dir:
        val = list_image_folder(config.val_dir, "validation folder", min_classes)
        check_same_classes(train, val)
    if config.negatives:
        negatives = list_negatives(config.negatives)
        if val is None:
            train = with_class(train, negatives)  # the held-out fraction is taken from every class alike
        else:
            if len(negatives) < 3:
                raise ParameterError(
                    "negatives",
                    f"{config.negatives} has {len(negatives)} image(s); with {{param:val_dir}} a fifth of them "
                    "is held out for validation, so give at least 3",
                )
            held_in, held_out = split_validation(negatives, DEFAULT_VAL_SPLIT, config.seed)
            train, val = with_class(train, held_in), with_class(val, held_out)
    build_spec(config, train.class_names)  # a class mode that does not fit the classes fails here
    return Listing(train, val)


def choose_batch_size(count: int, replicas: int) -> int:
    """The batch size for `count` training images (hh.trainer.config.auto_batch_size), said in one line."""
    from .config import auto_batch_size

    size = auto_batch_size(count, replicas)
    steps = -(-count // size)
    log.info(
        f"batch size {size} for {count} training images ({steps} step{'s' if steps > 1 else ''} an epoch); --batch-size sets it"
    )
    return size


def record_split(config: TrainConfig, train: ImageFolder, val: ImageFolder, reports: list[ScanReport]) -> RecordedSplit:
    """The split as files on disk (originals, with size and mtime), from the scan's verdicts."""
    kept = {v.load_path: v for r in reports for v in r.kept}

    def entries(folder: ImageFolder) -> list[SplitEntry]:
        out = []
        for path, label in zip(folder.paths, folder.labels):
            verdict = kept[path]
            normalized = Path(path).name if verdict.normalize else None
            path = str(Path(verdict.path).absolute())
            out.append(SplitEntry(path, label, verdict.size, verdict.mtime_ns, normalized, verdict.digest))
        return out

    skipped = sorted(str(Path(v.path).absolute()) for r in reports for v in (*r.bad, *r.ignored))
    return RecordedSplit(train.class_names, config.data_dir, config.val_dir, entries(train), entries(val), skipped)


def scan_and_split(config: TrainConfig, run: RunFolder, listing: Listing) -> RunData:
    """Check and split the data, choose the class mode, build the spec and the record.

    Every image is scanned first (hh.trainer.scan): bad files are skipped (or refused with
    strict), odd-but-real ones are normalized into the run folder. When the images fit in RAM
    (and no on-disk cache was asked for), the scan keeps what it decoded for training.
    """
    from .data import should_cache

    spec = build_spec(config, listing.train.class_names)
    total = len(listing.train) + (len(listing.val) if listing.val is not None else 0)
    in_ram = config.cache is None and should_cache(total, spec)

    def scan(folder: ImageFolder) -> tuple[ImageFolder, ScanReport, DecodedImages | None]:
        if in_ram:
            return scan_and_decode(folder, run.normalized_dir, spec)
        return (*scan_folder(folder, run.normalized_dir), None)

    folder, report, decoded = scan(listing.train)
    reports = [report]
    decoded_by_split = {"train": decoded, "validation": decoded}
    if listing.val is not None:
        train = folder
        val, val_report, decoded_by_split["validation"] = scan(listing.val)
        reports.append(val_report)
    else:
        fraction = config.val_split if config.val_split is not None else DEFAULT_VAL_SPLIT
        train, val = split_validation(folder, fraction, config.seed)
    enforce(report, config.strict, config.data_dir)
    if config.val_dir:
        enforce(reports[1], config.strict, config.val_dir)
    kept = {name: d for name, d in decoded_by_split.items() if d is not None}
    return RunData(train, val, spec, record_split(config, train, val, reports), reports, kept)


def recorded_data(config: TrainConfig, run: RunFolder, split: RecordedSplit) -> RunData:
    """The data of a resumed run: exactly the recorded split, checked against the disk."""
    drift = split.drift()
    if drift:
        raise UserError(
            f"{len(drift)} file(s) of this run's recorded split changed since it started ({describe_drift(drift)}); "
            "restore them, or start a new run"
        )
    added = split.added()
    if added:
        log.info(f"note: {len(added)} image(s) added to the data folders since this run started are not part of it (ignored)")
    for entry in (*split.train, *split.validation):
        if entry.normalized and not (run.normalized_dir / entry.normalized).exists():
            normalized_copy(entry.file, run.normalized_dir)
    return RunData(
        split.folder("train", run.path), split.folder("validation", run.path), build_spec(config, split.class_names), split
    )


def prepare_data(config: TrainConfig, run: RunFolder, worker: int, is_chief: bool) -> RunData:
    """The recorded split when there is one (a resumed run), else a scan and a new record."""
    recorded = run.read_split(worker)
    if recorded is not None:
        return recorded_data(config, run, recorded)
    data = scan_and_split(config, run, list_data(config))
    if not config.val_dir and config.val_split is None:
        log.info(
            f"no --val-dir: holding out {DEFAULT_VAL_SPLIT:.0%} of each class for validation (--val-split {DEFAULT_VAL_SPLIT})"
        )
    summary = data.describe_scan()
    if summary:
        log.info(summary)
    run.write_split(data.split, worker)
    if is_chief:
        run.write_contract(data.spec)
        if data.bad_files:
            run.write_bad_files(data.bad_files)
    return data


def cache_key(data: RunData, split: str) -> str:
    """What determines a decoded-image cache: the files (and their versions) and the spec."""
    digest = hashlib.sha256(data.spec.to_json().encode())
    for entry in data.split.entries(split):
        digest.update(f"{entry.file}|{entry.size}|{entry.mtime_ns}|{entry.label}\n".encode())
    return digest.hexdigest()[:16]


def class_weights(config: TrainConfig, data: RunData) -> dict[int, float] | None:
    """balanced: each class weighs n_images / (n_classes * its images), so every class counts
    as much in the loss as if the data were balanced."""
    if config.class_weight == "none":
        return None
    counts = list(data.train.counts().values())
    return {i: sum(counts) / (len(counts) * count) for i, count in enumerate(counts)}


def describe_classes(config: TrainConfig, data: RunData) -> str:
    """The class counts, and their weights when balanced: imbalance is the first thing to know."""
    counts = data.train.counts()
    line = "training images: " + ", ".join(f"{name} {n}" for name, n in counts.items())
    weights = class_weights(config, data)
    if weights:
        line += "; balanced class weights " + ", ".join(f"{name} {weights[i]:.2f}" for i, name in enumerate(counts))
    return line


def input_pipelines(cluster, data: RunData, config: TrainConfig, epochs_done: int):
    """(training, validation) datasets, on one device or sharded over a cluster's workers."""
    from .distribute import cluster_dataset

    cache: dict[str, str | None] = {split: None for split in ("train", "validation")}
    if config.cache:
        cache = {split: str(Path(config.cache) / f"{cache_key(data, split)}-{split}") for split in cache}
        Path(config.cache).mkdir(parents=True, exist_ok=True)
    # The seed moves with the epoch, so a resumed run does not replay the first epochs' order.
    train_ds = cluster_dataset(
        cluster, data.train, data.spec, config.batch, True, config.seed + epochs_done, cache["train"],
        config.augment, data.decoded.get("train"),
    )  # fmt: skip
    val_ds = cluster_dataset(
        cluster, data.val, data.spec, config.batch, False, 0, cache["validation"], decoded=data.decoded.get("validation")
    )
    return train_ds, val_ds
