"""The documentation site builds without warnings, and the CLI page matches the parser."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from multimodal_rag import cli

ROOT = Path(__file__).resolve().parents[1]
CLI_PAGE = ROOT / "docs" / "cli.md"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli._parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("mmrag has no subcommands")


def _section(page: str, command: str) -> str:
    """The part of the CLI page under ``## `mmrag COMMAND` ``, up to the next heading."""
    found = re.search(rf"^## `mmrag {command}`\n(.*?)(?=^## |\Z)", page, re.S | re.M)
    assert found is not None, f"docs/cli.md has no section for `mmrag {command}`"
    return found.group(1)


def test_cli_page_documents_every_command_and_option() -> None:
    page = CLI_PAGE.read_text(encoding="utf-8")
    commands = _subcommands()
    assert set(commands) == set(cli._COMMANDS)
    for name, parser in commands.items():
        section = _section(page, name)
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert option in section, f"`mmrag {name}` section lacks {option}"
        # Every command's --json document is shown as a JSON example.
        assert "```json" in section, f"`mmrag {name}` section shows no JSON output"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    engines = (site / "api" / "engines" / "index.html").read_text(encoding="utf-8")
    # The API reference is rendered from the docstrings, signature and examples included.
    assert 'id="multimodal_rag.engine.CitedQueryEngine"' in engines
    assert "max_chars_per_source" in engines
    assert "format_sources" in engines and ":func:" not in engines
    for page in ("concepts", "configuration", "cli", "chroma-server", "evaluation"):
        assert (site / page / "index.html").is_file(), page
    assert (site / "troubleshooting" / "index.html").read_text(encoding="utf-8").count(
        "HF_HUB_OFFLINE"
    ) >= 2
