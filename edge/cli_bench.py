"""hh-bench: how fast a model runs on this device, stage by stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .cli_util import OverwriteOption, VerboseOption, make_app, reports_errors, setup_output
from .errors import ParameterError, UserError
from .signals import sigterm_as_interrupt

app = make_app("Measure a .tflite model on this device.")


@app.command()
@reports_errors({"json_out": "--json"})
def bench(
    model: Annotated[Path, typer.Argument(help="A .tflite from hh-convert.")],
    threads: Annotated[int | None, typer.Option(help="Interpreter threads (default: CPU cores, at most 4).")] = None,
    frames: Annotated[int, typer.Option(help="Frames to time (after 10 warm-up frames).")] = 300,
    source: Annotated[
        str | None, typer.Option(help="Camera index, video file or stream URL; default: generated 640x480 frames.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the numbers to this JSON file.")] = None,
    overwrite: OverwriteOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Time capture/decode, preprocess, invoke and postprocess per frame, and report end-to-end
    FPS, p50/p95 latency, the runtime that loaded, and peak memory.

    Example: hh-bench models/run1/model_int8.tflite --threads 4
    """
    setup_output(verbose)
    from .capture import open_source, source_opener
    from .files import atomic_write_text, check_output_file
    from .machine import default_threads
    from .runtime import Classifier
    from .stage_timing import STAGES, synthetic_frames, time_stages

    if frames < 1:
        raise ParameterError("frames", f"must be at least 1, got {frames}")
    if threads is not None and threads < 1:
        raise ParameterError("threads", f"must be at least 1, got {threads}")
    info = source_opener(source)[1] if source is not None else None
    if json_out is not None:
        check_output_file(json_out, "json_out", overwrite, inputs=[model, *([info.path] if info and info.path else [])])
    threads = threads or default_threads()
    classifier = Classifier(model, num_threads=threads)
    if source is None:
        generator = synthetic_frames()
        read_frame = generator.__next__
        source_text = "generated 640x480 frames"
        capture = None
    else:
        capture, info, _ = open_source(source)

        def read_frame():
            ok, frame = capture.read()
            return frame if ok else None

        source_text = info.description
    try:
        with sigterm_as_interrupt():
            times = time_stages(classifier, read_frame, frames)
    except KeyboardInterrupt:
        print("interrupted before the timing finished; nothing was written", file=sys.stderr)
        raise typer.Exit(130) from None
    finally:
        if capture is not None:
            capture.release()
    if times.frames == 0:
        raise UserError(f"{source_text}: gave no frames to time")
    result = times.as_dict()
    result.update(model=str(model), source=source_text, threads=threads, input_dtype=classifier.input_dtype.name)
    print(f"{classifier.describe()}; {threads} threads; {source_text}; {times.frames} frames")
    print(f"{'stage':<12}{'mean ms':>10}{'p50 ms':>10}{'p95 ms':>10}")
    for stage in STAGES:
        s = result[stage]
        print(f"{stage:<12}{s['mean_ms']:>10.3f}{s['p50_ms']:>10.3f}{s['p95_ms']:>10.3f}")
    e = result["end_to_end"]
    print(f"{'end to end':<12}{'':>10}{e['p50_ms']:>10.3f}{e['p95_ms']:>10.3f}   {e['fps']:.1f} FPS")
    print(f"peak RSS {result['peak_rss_mb']} MB")
    if json_out:
        atomic_write_text(json_out, json.dumps(result, indent=2) + "\n")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
