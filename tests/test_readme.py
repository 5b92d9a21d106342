"""The README is part of the specification: its commands and examples work as written."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def _commands(block: str) -> list[str]:
    """The command of each line of a shell block, without its trailing comment."""
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readmes_install_and_test_commands_word_for_word():
    install_section = README.split("## Install and test", 1)[1]
    commands = _commands(re.search(r"```sh\n(.*?)```", install_section, flags=re.S).group(1))
    assert commands == ['pip install -e ".[test]"', "pytest"]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    steps = [line for line in ci if line in commands]
    assert steps == commands


def test_bare_pytest_finds_the_repository_packages():
    # `pytest` (not `python -m pytest`) must import kodak_eval from the repository root.
    import tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "." in config["pythonpath"]


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_every_python_example_runs_as_written(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # examples that write files write them here
    code = _blocks("python")[index]
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "__readme__"})


def _cli_commands() -> list[str]:
    """Every `blockcodec ...` command in the README's shell blocks, cut at a pipe,
    redirection or comment."""
    found = []
    for block in _blocks("sh"):
        for line in block.splitlines():
            if "blockcodec " in line:
                command = "blockcodec " + line.split("blockcodec ", 1)[1]
                found.append(re.split(r"\s[|<>#]", command)[0].strip())
    return found


@pytest.mark.parametrize("command", _cli_commands())
def test_every_command_line_example_is_accepted(command):
    from blockcodec import cli
    cli.build_parser().parse_args(shlex.split(command)[1:])   # raises on an unknown option or bad value
