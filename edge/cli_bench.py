"""hh-bench: how fast a model runs on this device, stage by stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .cli_util import OverwriteOption, VerboseOption, make_app, reports_errors, run_app, setup_output
from .errors import ParameterError
from .quiet import scrubbed_stderr
from .redact import secrets_of
from .signals import sigterm_as_interrupt

app = make_app("Measure a .tflite model on this device.")


@app.command()
@reports_errors({"json_out": "--json", "num_threads": "--threads"})
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
    from .capture import source_opener
    from .files import atomic_write_text, check_output_file
    from .machine import default_threads
    from .stage_timing import STAGES, time_model

    if frames < 1:
        raise ParameterError("frames", f"must be at least 1, got {frames}")
    info = source_opener(source)[1] if source is not None else None
    if json_out is not None:
        check_output_file(json_out, "json_out", overwrite, inputs=[model, *([info.path] if info and info.path else [])])
    threads = default_threads() if threads is None else threads
    try:
        with scrubbed_stderr(secrets_of(source or "")), sigterm_as_interrupt():
            result, description = time_model(model, threads, frames, source)
    except KeyboardInterrupt:
        print("interrupted before the timing finished; nothing was written", file=sys.stderr)
        raise typer.Exit(130) from None
    print(f"{description}; {threads} threads; {result['source']}; {result['frames']} frames")
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
    run_app(app)


if __name__ == "__main__":
    main()
