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


README = DOCS.parent / "README.md"


def readme_block(marker: str) -> str:
    """The fenced bash block after `<!-- ci:MARKER -->` in the README (what .ci/run executes)."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- ci:{marker} -->\n```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert found, f"README.md lacks the ci:{marker} block"
    return found.group(1)


def test_the_readme_says_how_to_build_the_docs_and_ci_runs_it():
    docs = readme_block("docs")
    assert '".[docs]"' in docs and "mkdocs build --strict" in docs
    ci = (DOCS.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "readme_block docs" in ci and 'bash -euo pipefail -c "$docs"' in ci


def test_the_test_extra_leaves_the_docs_toolchain_to_the_docs_extra():
    pyproject = (DOCS.parent / "pyproject.toml").read_text(encoding="utf-8")
    test_extra = re.search(r"^test = \[(.*?)^\]", pyproject, re.MULTILINE | re.DOTALL).group(1)
    docs_extra = re.search(r"^docs = \[(.*?)\]", pyproject, re.MULTILINE | re.DOTALL).group(1)
    assert "mkdocs" in docs_extra and "mkdocs" not in test_extra
    assert '".[test]"' in readme_block("test")


def test_the_readme_python_snippet_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYLM_BACKEND", "torch")  # the snippet as written, on the backend that converts nothing
    monkeypatch.setenv("TINYLM_HOME", str(tmp_path / "home"))
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert blocks
    calls: list[str] = []

    def recording_print(*args, **kwargs):
        calls.append(" ".join(map(str, args)))
        print(*args, **kwargs)

    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"print": recording_print})  # our own documentation
    # something useful: the first answer (`m.generate("My parcel never arrived.")`) is a reply, not empty text
    # or a triage record, and the whole snippet prints words
    assert len(calls[0].split()) >= 8 and not calls[0].lstrip().startswith("{"), calls[0]
    assert sum(len(c.split()) for c in calls) >= 40


def test_the_readme_commands_run(tmp_path):
    text = README.read_text(encoding="utf-8")
    block = re.search(r"^## Command line\n\n```\n(.*?)^```", text, re.MULTILINE | re.DOTALL).group(1)
    names = {"decoder": "support-assistant", "encoder": "support-embedder"}
    env = {**__import__("os").environ, "TINYLM_BACKEND": "torch", "TINYLM_HOME": str(tmp_path / "home")}
    ran = []
    for line in block.splitlines():
        command = line.split("#")[0].strip()
        if " | " in command:  # `tinylm cache ls | prune`: the listing (prune deletes)
            command = command.split(" | ")[0]
        args = shlex.split(command)[1:]
        model = names["encoder" if args[0] == "embed" else "decoder"]
        args = [model if a == "MODEL" else a for a in args]
        done = subprocess.run(
            [sys.executable, "-m", "tinylm.cli", *args],
            input="Where is my order?\n" if args[0] == "chat" else "",
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, (line, done.stderr)
        ran.append(args[0])
    assert {"backends", "generate", "chat", "embed", "info", "doctor", "cache"} <= set(ran)


def test_the_nncf_page_counts_the_prompts_the_script_uses():
    faq = __import__("json").loads((DOCS.parent / "examples" / "data" / "faq.json").read_text(encoding="utf-8"))
    page = (DOCS / "benchmarks-openvino-nncf.md").read_text(encoding="utf-8")
    assert f"greedy agreement over {len(faq)} chat prompts" in page  # every FAQ question, as the page says
    assert "at commit 94c2b4d" in page  # the retired script is named with the commit that ran it
