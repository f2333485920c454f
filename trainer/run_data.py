"""What a run trains on: the data folders listed, scanned, split, recorded, and fed to Keras.

A new run lists its folders (cheap, before anything is written), scans every image once
(hh.trainer.scan: bad files skipped or refused, odd ones normalized, model inputs kept in RAM
when they fit) and records the split in the run folder. A resumed run reads that record
instead and checks it against the disk. Either way the result is one `RunData`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..edge.errors import ParameterError, UserError
from ..edge.folders import ImageFolder, check_same_classes, list_image_folder, list_negatives, split_validation, with_class
from ..edge.spec import UNKNOWN_LABEL, PreprocessingSpec
from .config import TrainConfig
from .decode import DecodedImages, decode_into_file
from .input_file import ImageVersion, InputFileFailed, InputFileWriter, find_input_file, size_text
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


@dataclass(frozen=True)
class KeepPlan:
    """Where the decoded model inputs go: RAM when they fit the budget, else an inputs file on
    disk (in `folder`; when the disk has no room, every epoch decodes again)."""

    where: str  # "ram" or "file"
    folder: Path | None
    need: int  # bytes of model inputs
    budget: int  # bytes of RAM they may take


def ram_budget(config: TrainConfig) -> int:
    """--ram-budget in bytes; by default half the memory this process may use (machine or
    container): the rest is for TensorFlow, the model, and whatever else the machine runs."""
    from ..edge.machine import memory_limit

    if config.ram_budget is not None:
        return int(config.ram_budget * 1e9)
    return memory_limit() // 2


def plan_keep(config: TrainConfig, run: RunFolder, spec: PreprocessingSpec, count: int) -> KeepPlan:
    need = count * spec.height * spec.width * 3
    budget = ram_budget(config)
    if config.cache is None and need <= budget:
        return KeepPlan("ram", None, need, budget)
    return KeepPlan("file", Path(config.cache) if config.cache else run.inputs_dir, need, budget)


def describe_plan(plan: KeepPlan, writer: InputFileWriter, what: str) -> str:
    """The line said when model inputs are written to disk: which, how much, and why not RAM."""
    budget = f"more than the RAM budget of {size_text(plan.budget)} (--ram-budget)"
    why = budget if plan.need > plan.budget else "--cache"
    size = size_text(writer.count * writer.row_bytes)
    return f"model inputs of the {what}: {size}, {why}: decoded once into {plan.folder}, read from there every epoch"


def new_input_file(plan: KeepPlan, count: int, spec: PreprocessingSpec) -> InputFileWriter | None:
    """A new inputs file for `count` images, or None (and a note) when the disk has no room."""
    assert plan.folder is not None
    try:
        return InputFileWriter(plan.folder, count, spec)
    except InputFileFailed as exc:
        log.info(f"note: {exc}; every epoch decodes these images again")
        return None


def scan_keeping(
    folder: ImageFolder, run: RunFolder, spec: PreprocessingSpec, plan: KeepPlan, what: str
) -> tuple[ImageFolder, ScanReport, DecodedImages | None]:
    """Scan one folder, keeping the model inputs as planned; an inputs file already holding
    every image (an earlier run's, in --cache) is used instead of decoding them again."""
    if plan.where == "ram":
        return scan_and_decode(folder, run.normalized_dir, spec)
    assert plan.folder is not None
    reused = reuse_input_file(folder, run, spec, plan.folder, what)
    if reused is not None:
        return reused
    writer = new_input_file(plan, len(folder), spec)
    if writer is None:
        return (*scan_folder(folder, run.normalized_dir), None)
    log.info(describe_plan(plan, writer, what))
    try:
        return scan_and_decode(folder, run.normalized_dir, spec, writer=writer)
    except InputFileFailed as exc:  # written, but it could not be named and indexed
        log.info(f"note: {exc}; every epoch decodes these images again")
        return (*scan_folder(folder, run.normalized_dir), None)
    except BaseException:
        writer.discard()
        raise


def reuse_input_file(
    folder: ImageFolder, run: RunFolder, spec: PreprocessingSpec, cache: Path, what: str
) -> tuple[ImageFolder, ScanReport, DecodedImages] | None:
    """When an inputs file in `cache` has every listed file (same path, size and time), the scan
    only checks the files (cheap), and the kept ones' digests must match too."""
    try:
        listed = [version_of(path) for path in folder.paths]
    except OSError:
        return None
    found = find_input_file(cache, spec, listed, known=True)
    if found is None:
        return None
    inputs, rows = found
    cleaned, report = scan_folder(folder, run.normalized_dir)
    row_by_path = {version.file: int(row) for version, row in zip(listed, rows)}
    row_of: dict[str, int] = {}
    for verdict in report.kept:
        row = row_by_path[str(Path(verdict.path).absolute())]
        held = inputs.versions[row]
        if held is None or not held.usable or held.digest != verdict.digest or verdict.load_path is None:
            inputs.close()  # changed in place (same size and time) since: decode afresh
            return None
        row_of[verdict.load_path] = row
    log.info(f"model inputs of the {what}: read from {inputs.path} (decoded by an earlier run)")
    return cleaned, report, DecodedImages(inputs, row_of)


def version_of(path: str) -> ImageVersion:
    """The file as it is now (its digest unknown until the scan reads it)."""
    stat = os.stat(path)
    return ImageVersion(str(Path(path).absolute()), stat.st_size, stat.st_mtime_ns, None)


def scan_and_split(config: TrainConfig, run: RunFolder, listing: Listing) -> RunData:
    """Check and split the data, choose the class mode, build the spec and the record.

    Every image is scanned first (hh.trainer.scan): bad files are skipped (or refused with
    strict), odd-but-real ones are normalized into the run folder. The scan keeps what it
    decoded, in RAM when it fits the budget, else in an inputs file on disk (KeepPlan).
    """
    spec = build_spec(config, listing.train.class_names)
    total = len(listing.train) + (len(listing.val) if listing.val is not None else 0)
    plan = plan_keep(config, run, spec, total)
    folder, report, decoded = scan_keeping(listing.train, run, spec, plan, "training folder")
    reports = [report]
    decoded_by_split = {"train": decoded, "validation": decoded}
    if listing.val is not None:
        train = folder
        val, val_report, decoded_by_split["validation"] = scan_keeping(listing.val, run, spec, plan, "validation folder")
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
    """The data of a resumed run: exactly the recorded split, checked against the disk, with
    its model inputs decoded once (or found in an inputs file from before)."""
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
    spec = build_spec(config, split.class_names)
    train, val = split.folder("train", run.own_dir()), split.folder("validation", run.own_dir())
    plan = plan_keep(config, run, spec, len(train) + len(val))
    decoded = {}
    for name, folder, entries in (("train", train, split.train), ("validation", val, split.validation)):
        kept = recorded_inputs(plan, spec, entries, list(folder.paths), f"{name} split")
        if kept is not None:
            decoded[name] = kept
    return RunData(train, val, spec, split, decoded=decoded)


def recorded_inputs(
    plan: KeepPlan, spec: PreprocessingSpec, entries: list[SplitEntry], paths: list[str], what: str
) -> DecodedImages | None:
    """The model inputs of one split of a resumed run (`paths` load `entries`), kept as
    planned: an inputs file that holds them all (the first session's) is read as it is."""
    if plan.where == "ram":
        return DecodedImages.of_files(paths, spec)
    assert plan.folder is not None
    versions = [ImageVersion(e.file, e.size, e.mtime_ns, e.digest) for e in entries]
    found = find_input_file(plan.folder, spec, versions)
    if found is not None:
        log.info(f"model inputs of the {what}: read from {found[0].path}")
        return DecodedImages(found[0], {path: int(row) for path, row in zip(paths, found[1])})
    writer = new_input_file(plan, len(paths), spec)
    if writer is None:
        return None
    log.info(describe_plan(plan, writer, what))
    try:
        decode_into_file(paths, spec, writer)
        return DecodedImages(writer.commit(versions), {path: row for row, path in enumerate(paths)})
    except InputFileFailed as exc:
        log.info(f"note: {exc}; every epoch decodes these images again")
        return None
    except BaseException:
        writer.discard()
        raise


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

    # The seed moves with the epoch, so a resumed run does not replay the first epochs' order.
    train_ds = cluster_dataset(
        cluster, data.train, data.spec, config.batch, True, config.seed + epochs_done, config.augment, data.decoded.get("train")
    )
    val_ds = cluster_dataset(cluster, data.val, data.spec, config.batch, False, 0, decoded=data.decoded.get("validation"))
    return train_ds, val_ds
