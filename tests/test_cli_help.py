"""A command line that explains itself: --version, ``python -m graphbp``, every option's help
with its default and choices, and ``graphbp ops`` in columns that never run together."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest

import graphbp as gb
from graphbp import cli
from graphbp.errors import visible
from graphbp.text import MAX_CELL


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


def test_every_option_of_every_command_has_help_its_default_and_its_choices() -> None:
    parser = cli._parser()
    commands = _subparsers(parser)
    assert set(commands) >= {"train", "render", "explain", "ops", "check", "bench"}
    checked = 0
    for name, command in {"graphbp": parser, **commands}.items():
        page = command.format_help()
        for action in command._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            option = action.option_strings[-1] if action.option_strings else action.dest
            where = f"graphbp {name} {option}"
            assert action.help and action.help.strip(), f"{where} has no help text"
            shown = command._get_formatter()._expand_help(action)
            assert "".join(shown.split()) in "".join(page.split()), where  # as wrapped
            if cli.shows_default(action):
                assert "default" in shown and str(action.default) in shown, (where, shown)
                checked += 1
            elif action.required and action.option_strings:  # no default: it must be given
                assert "(required)" in shown, (where, shown)
            elif action.nargs != 0 and (action.option_strings or action.nargs == "?"):
                assert "(default: " in shown, (where, shown)  # what leaving it out does
            for choice in action.choices or ():
                assert str(choice) in page, (where, choice)
    assert checked >= 8  # --example, --batch-size, --optimizer, --seed, --out, --dtype, ...


def test_every_command_s_help_says_what_it_does(capsys: pytest.CaptureFixture[str]) -> None:
    commands = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    for action in commands._choices_actions:
        assert action.help
        assert cli.main([action.dest, "--help"]) == 0
        page = " ".join(capsys.readouterr().out.split())
        assert " ".join(action.help.split())[1:] in page, action.dest  # below the usage line


def test_graphbp_alone_shows_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: graphbp ")
    for name in ("train", "predict", "render", "explain", "ops", "check", "bench"):
        assert re.search(rf"^ +{name} +\w", err, re.M), name  # each command, with its line
    assert "required" not in err


def test_defaults_are_stated_once_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "--help"]) == 0
    page = " ".join(capsys.readouterr().out.split())
    assert "--batch-size BATCH_SIZE rows per training step" in page and "(default: 32)" in page
    assert (
        "--epochs EPOCHS passes over the data; with --resume, how many more "
        "(default: diabetes 150, digits 100)" in page
    )
    assert "(default: sgd)" in page and page.count("(default: diabetes)") == 1
    assert "default: 0) (default" not in page


def test_version_and_python_m_graphbp_behave_as_the_graphbp_command(tmp_path: Path) -> None:
    """Both start graphbp.cli.main (whose commands are tested in-process): the version, a
    usage error and no command are enough to tell them apart from anything else."""
    script = Path(sys.executable).parent / "graphbp"  # the installed entry point
    cases = {
        ("--version",): 0,
        ("train", "--epochs", "0"): 2,  # a usage error
        (): 2,  # no command
    }
    for args, status in cases.items():
        runs = [
            subprocess.run(
                [*command, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
            )
            for command in ([str(script)], [sys.executable, "-m", "graphbp"])
        ]
        assert [r.returncode for r in runs] == [status, status], (args, runs[1].stderr)
        assert runs[0].stdout == runs[1].stdout and runs[0].stderr == runs[1].stderr, args
        if args == ("--version",):
            assert runs[0].stdout == f"graphbp {gb.__version__}\n"
        else:  # one usage line, or the commands
            assert runs[0].stderr.startswith(("graphbp train: error: argument", "usage: graphbp"))


def _columns(text: str) -> int:
    """The terminal columns ``text`` takes, counted independently of graphbp (as wcwidth
    does): marks and format characters none, Hangul medial and final jamo none, wide
    characters two, an emoji asked for with U+FE0F two."""
    width = 0
    for k, c in enumerate(text):
        if c == "\ufe0f":
            width += k > 0 and unicodedata.east_asian_width(text[k - 1]) not in "WF"
        elif unicodedata.category(c) in ("Mn", "Me", "Cf") or 0x1160 <= ord(c) <= 0x11FF:
            pass
        else:
            width += 2 if unicodedata.east_asian_width(c) in "WF" else 1
    return width


class _Verbose(gb.Op):
    name = "a_plugin_op_whose_name_is_longer_than_any_builtin"
    label = "ｓｃａｌｅｄ x·σ(x) with a long label"  # full-width letters take two columns each
    local_grads = ("σ(x)·(1 + x·(1−σ(x))) ⊙ ŷ̂, a long local-derivative text\tand a tab",)

    def forward(self, xp: Any, x: Any) -> Any:
        return x

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g,)


def test_ops_columns_never_run_together(register: Any, capsys: pytest.CaptureFixture[str]) -> None:
    register(_Verbose)
    assert cli.main(["ops"]) == 0
    ops_table, backends_table = capsys.readouterr().out.split("\n\n")
    lines = ops_table.splitlines()
    header = lines[0].split("  ")
    header = [h.strip() for h in header if h.strip()]
    assert header == ["op", "label", "local derivatives ∂out/∂operandᵢ", "package"]
    starts = [_columns(lines[0][: lines[0].index(h)]) for h in header]
    rows = {}
    for line in lines:
        cells = []
        for k, start in enumerate(starts):  # each cell starts where its header does
            end = starts[k + 1] if k + 1 < len(starts) else None
            text = _cut(line, start, end)
            if k:
                assert _cut(line, start - 2, start) == "  ", line  # two spaces before it
            cells.append(text.strip())
        rows[cells[0]] = cells
    verbose = rows[_Verbose.name]
    assert verbose[1] == _Verbose.label
    shown = "σ(x)·(1 + x·(1−σ(x))) ⊙ ŷ̂, a long local-derivative text\\tand a tab"
    assert verbose[2] == shown[:MAX_CELL] + "…"  # 59 columns (ŷ and U+0302 take one) and …
    assert verbose[3] == __name__  # an op registered in code: its module
    assert rows["sigmoid"][1:] == ["σ", "σ(z)(1−σ(z))", "graphbp"]
    assert set(rows) >= {*gb.ops(), "input", "param", "const"}
    backend_lines = backends_table.splitlines()
    assert backend_lines[0].split() == ["backend", "package", "status"]
    assert {tuple(line.split()) for line in backend_lines[1:]} >= {
        ("numpy", "graphbp", "installed")
    }


_LABELS = {  # text that a terminal draws narrower or wider than its length
    "thai": "ที่นี่ดี",  # vowel and tone marks (Mn, combining class 0): 3 columns
    "hangul": "\u1100\u1161\u11a8",  # one syllable as three jamo: 2 columns
    "emoji": "\u263a\ufe0f\u2764\ufe0f",  # two emoji by U+FE0F: 4 columns
    "joined": "a\u200bb\u2062c",  # zero-width space, invisible times: 3 columns
    "long": "L" * 300,  # cut to MAX_CELL columns
}


@pytest.mark.parametrize("kind", list(_LABELS))
def test_ops_columns_stay_aligned_for_any_label(
    kind: str, register: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    label = _LABELS[kind]
    op = type(f"Op_{kind}", (_Verbose,), {"name": f"z_label_{kind}", "label": label})
    register(op)
    assert cli.main(["ops"]) == 0
    lines = capsys.readouterr().out.split("\n\n")[0].splitlines()
    sigmoid = next(line for line in lines if line.startswith("sigmoid "))
    package = _columns(sigmoid[: sigmoid.index("graphbp")])  # where the last column starts
    line = next(line for line in lines if line.startswith(op.name))
    assert _columns(line[: line.index(__name__)]) == package, line
    assert _columns(line) <= 4 * (MAX_CELL + 2), line  # every cell cut to its bound
    if kind == "long":
        assert "L" * (MAX_CELL - 1) + "…" in line and "L" * MAX_CELL not in line
    else:
        assert visible(label) in line  # format characters shown as escapes


def test_ops_warns_in_one_line_and_says_how_to_install_a_missing_backend(
    tmp_path: Path,
) -> None:
    """A plugin that fails to import: one line ``graphbp ops: warning: ...`` (not Python's
    file, line and source line); jax blocked from importing: its backend is marked."""
    (tmp_path / "broken_ops.py").write_text("raise RuntimeError('no such luck')\n")
    info = tmp_path / "broken_ops-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-ops\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[graphbp.ops]\nbroken = broken_ops:Broken\n")
    code = "import sys; sys.modules['jax'] = None; from graphbp.cli import main; sys.exit(main())"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONWARNINGS": ""}
    run = subprocess.run(
        [sys.executable, "-c", code, "ops"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    (warning,) = run.stderr.splitlines()
    assert warning.startswith("graphbp ops: warning: ") and "'broken'" in warning, warning
    assert "broken-ops" in warning and "no such luck" in warning
    jax = next(line for line in run.stdout.splitlines() if line.startswith("jax "))
    assert "not installed" in jax and "pip install 'graphbp[jax]'" in jax, jax


def _cut(line: str, start: int, end: int | None) -> str:
    """The characters of ``line`` from terminal column ``start`` to ``end``."""
    out, column = [], 0
    for c in line:
        if column >= start and (end is None or column < end):
            out.append(c)
        column += _columns(c)
    return "".join(out)
