"""The `hivelog` command needs only runtime dependencies: the parser is built from
declarations, and each subcommand's module is imported when it runs."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from tools import cli
from tools.cli_args import BENCH_TARGETS

ROOT = Path(__file__).resolve().parents[2]


def optional_imports() -> list[str]:
    """Import names of every package in the `test` and `bench` extras (pytest-asyncio ->
    pytest_asyncio), plus pytest's own internals."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {"_pytest"}
    for extra in ("test", "bench"):
        for requirement in project["optional-dependencies"][extra]:
            name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
            names.add(name.lower().replace("-", "_"))
    return sorted(names)


# Runs in a fresh interpreter: any import of a test-only package fails as if it were
# not installed, then the whole parser is built and `serve --help` runs.
BLOCKED_PROGRAM = textwrap.dedent(
    """
    import importlib, importlib.abc, sys

    BLOCKED = set(sys.argv[1].split(","))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
            return None

    sys.meta_path.insert(0, Block())
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED:
            del sys.modules[name]

    from tools import cli
    cli.build_parser()
    # what serve, replay, audit, export and import-hive need to run
    for name, (module, _, _) in cli.SUBCOMMANDS.items():
        if name != "bench":
            importlib.import_module(module)
    importlib.import_module("api.app")
    print("BENCH-EXIT", cli.main(["bench", "http", "--quick"]), flush=True)
    cli.main(sys.argv[2:])
    """
)


def run_blocked(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_PROGRAM, ",".join(optional_imports()), *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_optional_imports_cover_the_test_tools() -> None:
    names = optional_imports()
    for expected in ("httpx", "pytest", "pytest_asyncio", "hypothesis", "schemathesis", "mypy"):
        assert expected in names


def test_runtime_dependencies_suffice_for_the_cli_and_serve() -> None:
    r = run_blocked("serve", "--help")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "--port" in r.stdout and "--agents-root" in r.stdout
    # bench http without its extra: exit 2 and the exact install command
    assert "BENCH-EXIT 2" in r.stdout, r.stdout + r.stderr
    assert "pip install -e '.[bench]'" in r.stderr
    assert "'httpx'" in r.stderr


def test_version() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "tools", "--version"], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0
    assert re.fullmatch(r"hivelog \d+\.\d+\.\d+\S*\n", r.stdout), r.stdout


def test_every_subcommand_and_bench_target_parses() -> None:
    parser = cli.build_parser()
    for name in cli.SUBCOMMANDS:
        argv = {
            "import-hive": [name, "/nowhere"],
            "bench": [name, "store"],
            "worker": [name, "g", "--exec", "true"],
            "backup": [name, "/nowhere"],
            "restore": [name, "/nowhere"],
            "archive": [name, "--keep-last", "3", "-o", "/nowhere"],
            "restore-archive": [name, "/nowhere"],
            "copy": [name, "--from", "sqlite:///a.db", "--to", "sqlite:///b.db"],
        }.get(name, [name])
        args = parser.parse_args(argv)
        assert args._module == cli.SUBCOMMANDS[name][0]
    for target in BENCH_TARGETS:
        assert parser.parse_args(["bench", target, "--quick"]).what == target


def _signature(declare: object) -> list[tuple[tuple[str, ...], str, object]]:
    parser = argparse.ArgumentParser()
    declare(parser)  # type: ignore[operator]
    return [(tuple(a.option_strings), a.dest, a.default) for a in parser._actions]


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_modules_declare_no_other_arguments(name: str) -> None:
    """A subcommand module that still has its own `add_arguments` must declare exactly
    what `tools.cli_args` declares (the parser only uses the latter)."""
    module_name, _, declare = cli.SUBCOMMANDS[name]
    module = __import__(module_name, fromlist=["_"])
    own = getattr(module, "add_arguments", None)
    if own is not None and name != "bench":
        assert _signature(own) == _signature(declare), (
            f"{module_name}.add_arguments differs from tools/cli_args.py: move the change there"
        )


@pytest.mark.parametrize("flag", ["--header-timeout", "--body-timeout", "--keep-alive-timeout"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_serve_refuses_a_timeout_that_is_not_a_positive_number_of_seconds(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 or less would fire at once, nan breaks every connection's timer: usage error."""
    with pytest.raises(SystemExit) as refused:
        cli.build_parser().parse_args(["serve", f"{flag}={value}"])
    assert refused.value.code == 2
    assert flag in capsys.readouterr().err
    assert cli.build_parser().parse_args(["serve", f"{flag}=0.5"]) is not None
