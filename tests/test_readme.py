"""The README says what the commands do: its synopses list exactly the flags --help lists, its
examples use only flags that exist, and the commands it shows are the ones `make demo` runs."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import tomllib
import typer.main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# A synopsis: the command, then its arguments as upper-case placeholders or [options].
SYNOPSIS = re.compile(r"^    (hh-[a-z]+)((?: [a-z]+)?) (?=[A-Z_]+\b|\[)(.*(?:\n {10,}.*)*)", re.M)
INLINE_SYNOPSIS = re.compile(r"`(hh-data) ([a-z]+) ([A-Z][^`]*)`", re.S)


def command_flags(command: str, sub: str = "") -> set[str]:
    """Every flag of a command, from the same declaration --help prints."""
    module = importlib.import_module(SCRIPTS[command].split(":")[0])
    click_command = typer.main.get_command(module.app)
    if sub:
        click_command = click_command.commands[sub]  # type: ignore[attr-defined]
    flags = set()
    for param in click_command.params:
        flags.update(opt for opt in [*param.opts, *getattr(param, "secondary_opts", [])] if opt.startswith("--"))
    return flags - {"--help"}


def synopses() -> dict[tuple[str, str], set[str]]:
    """(command, subcommand) -> the flags its README synopses name."""
    found: dict[tuple[str, str], set[str]] = {}
    for command, sub, text in SYNOPSIS.findall(README):
        found.setdefault((command, sub.strip()), set()).update(FLAG.findall(text))
    for command, sub, text in INLINE_SYNOPSIS.findall(README):
        found.setdefault((command, sub), set()).update(FLAG.findall(text))
    return found


def test_the_readme_has_a_synopsis_for_every_command():
    commands = {command for command, _ in synopses()}
    assert commands == set(SCRIPTS), commands
    assert {sub for command, sub in synopses() if command == "hh-data"} >= {"synth", "import", "merge", "video"}


@pytest.mark.parametrize(("command", "sub"), sorted(synopses()))
def test_a_synopsis_lists_exactly_the_flags_of_help(command, sub):
    # One side of a --x/--no-x pair names the pair.
    written = {flag.replace("--no-", "--") for flag in synopses()[(command, sub)]}
    actual = {flag.replace("--no-", "--") for flag in command_flags(command, sub)}
    assert written - actual == set(), f"{command} {sub}: the README names flags --help does not have"
    # hh-data merge's synopsis is in prose: its flags are described there, not listed.
    if not (command == "hh-data" and sub == "merge"):
        assert actual - written == set(), f"{command} {sub}: flags --help has and the README's synopsis leaves out"


def test_every_example_in_the_readme_uses_flags_that_exist():
    for match in re.finditer(r"^ {4}(hh-[a-z]+) (.*(?:\\\n.*)*)", README, re.M):
        command, rest = match.groups()
        if command not in SCRIPTS or re.match(r"[A-Z_]+\b|\[|\s", rest):
            continue  # a synopsis (checked above), or the demo's printed output
        sub = rest.split()[0] if command == "hh-data" else ""
        flags = set(FLAG.findall(rest.split("#")[0]))
        assert flags <= command_flags(command, sub), f"{match.group(0)!r}: {flags - command_flags(command, sub)}"


def test_the_commands_the_readme_shows_are_the_ones_make_demo_runs():
    block = README.split("## The commands", 1)[1].split("What the demo", 1)[0]
    shown = [line.split("#")[0].split() for line in block.splitlines() if line.startswith("    hh-")]
    recipe = (ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    ran = [line.split("|")[0].replace("$(BIN)/", "").replace("$(DEMO)/", "").split() for line in recipe.splitlines()]

    # The demo's data and run folders sit under demo/ (README: data/, models/run1), and its
    # camera is a video (README: a real camera, --source 0): the same commands otherwise.
    def same_shape(words):
        return [w.removeprefix("models/").replace("run1", "run").removesuffix("/") for w in words]

    for command in shown:
        if command[0] == "hh-camera":
            assert any(words[:2] == ["hh-camera", "run/model_int8.tflite"] for words in map(same_shape, ran)), ran
            continue
        assert same_shape(command) in [same_shape(words) for words in ran], (command, ran)


def synopsis_values() -> list[tuple[str, str, str, str]]:
    """(command, subcommand, flag, what the synopsis writes after it) for `[--flag VALUE]`."""
    found = []
    for command, sub, text in [*SYNOPSIS.findall(README), *INLINE_SYNOPSIS.findall(README)]:
        for flag, value in re.findall(r"\[(--[a-z][a-z0-9-]*) ([^\]\s]+)\]", text):
            found.append((command, sub.strip(), flag, value))
    return found


def choices_of(flag: str) -> tuple[str, ...] | None:
    """The values a choice flag takes, from the constants the library checks them against."""
    from hh.edge import spec
    from hh.trainer import config

    return {
        "--arch": config.ARCH_NAMES, "--augment": config.AUGMENTS, "--class-weight": config.CLASS_WEIGHTS,
        "--optimizer": config.OPTIMIZERS, "--schedule": config.SCHEDULES, "--strategy": config.STRATEGIES,
        "--class-mode": config.CLASS_MODES,
        "--aspect": spec.ASPECTS, "--interpolation": spec.INTERPOLATIONS,
    }.get(flag)  # fmt: skip


def default_of(param) -> str | None:
    """A flag's default, as --help gives it (flags made from an options dataclass say it in their help)."""
    if param.default is not None and not isinstance(param.default, bool):
        return str(param.default)
    said = re.search(r"\(default:? ([^)\s,;]+)", param.help or "")
    return said.group(1) if said else None


def test_a_synopsis_writes_each_flags_choices_and_default_as_help_has_them():
    checked = 0
    for command, sub, flag, value in synopsis_values():
        click_command = typer.main.get_command(importlib.import_module(SCRIPTS[command].split(":")[0]).app)
        if sub:
            click_command = click_command.commands[sub]  # type: ignore[attr-defined]
        param = next(p for p in click_command.params if flag in p.opts)
        where = f"README: {command} {sub} [{flag} {value}]"
        if "|" in value and value.islower():
            assert set(value.split("|")) == set(choices_of(flag) or ()), f"{where}: takes {choices_of(flag)}"
            assert value.split("|")[0] == default_of(param), f"{where}: the default is {default_of(param)}"
            checked += 1
        elif re.fullmatch(r"\d*\.?\d+", value):
            assert float(value) == float(default_of(param) or "nan"), f"{where}: the default is {default_of(param)}"
            checked += 1
    assert checked >= 20, checked
