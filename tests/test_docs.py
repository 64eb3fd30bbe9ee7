"""The documentation as a contract: every hook, public error and TINYLM_* variable has its own heading,
and the quickstart's code runs."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import tinylm
from tinylm import errors, hookspecs, settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def headings(page: str) -> set[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return {m.group(1).strip().strip("`") for m in re.finditer(r"^#{1,6}\s+(.+)$", text, re.MULTILINE)}


def code_blocks(page: str, language: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def test_every_hook_has_a_heading():
    hooks = [n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "tinylm_spec")]
    assert hooks, "no hookspecs found"
    assert set(hooks) <= headings("plugins.md"), set(hooks) - headings("plugins.md")


def test_every_public_error_has_a_heading():
    missing = set(errors.__all__) - headings("errors.md")
    assert not missing, missing
    assert set(errors.__all__) <= set(tinylm.__all__)  # and each is exported from tinylm


def test_every_environment_variable_has_a_heading():
    missing = set(settings.ENV_VARS) - headings("choosing-a-backend.md")
    assert not missing, missing


def test_every_nav_page_exists():
    nav = (DOCS.parent / "mkdocs.yml").read_text()
    for page in re.findall(r":\s+([\w/-]+\.md)\s*$", nav, re.MULTILINE):
        assert (DOCS / page).is_file(), page


def test_the_quickstart_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in code_blocks("quickstart.md", "python"):
        exec(compile(block, "quickstart.md", "exec"), namespace)  # our own documentation
    for block in code_blocks("quickstart.md", "bash"):
        for line in block.splitlines():
            if line.startswith("tinylm "):
                args = shlex.split(line)[1:]
                subprocess.run([sys.executable, "-m", "tinylm.cli", *args], check=True, timeout=300)
