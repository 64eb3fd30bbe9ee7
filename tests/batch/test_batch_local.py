"""`tinylm batch` in this process: output fields, resume, and exactly one row per id after kill -9."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinylm
from tinylm.batch import BatchJob, run_local
from tinylm.cli import main

from .conftest import by_id, chats, kill_9_then_rerun, prompts, read_jsonl, run_clean, texts, write_jsonl


def test_generate_rows_match_model_generate(tiny_models, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", prompts(3))
    out = tmp_path / "out.jsonl"
    argv = ["batch", str(tiny_models["decoder"]), str(src), str(out), "--task", "generate", "--backend", "torch"]
    assert main([*argv, "--max-new-tokens", "6", "--no-progress"]) == 0
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [1, "t1", 3]
    with tinylm.load(tiny_models["decoder"], backend="torch") as model:
        for row, given in zip(rows, prompts(3)):
            done = model.generate(given["prompt"], max_new_tokens=6)
            assert row["text"] == done.text and row["finish_reason"] == done.finish_reason
            assert row["usage"] == {
                "prompt_tokens": done.usage.prompt_tokens,
                "completion_tokens": done.usage.completion_tokens,
                "total_tokens": done.usage.prompt_tokens + done.usage.completion_tokens,
            }


def test_chat_and_embed_rows(tiny_models, tmp_path):
    job = BatchJob(
        model=str(tiny_models["decoder"]),
        input=write_jsonl(tmp_path / "chat.jsonl", chats(2)),
        output=tmp_path / "chat-out.jsonl",
        task="chat",
        backend="torch",
        generation={"max_new_tokens": 4},
    )
    report = run_local(job)
    assert (report.rows, report.written, report.skipped) == (2, 2, 0)
    with tinylm.load(tiny_models["decoder"], backend="torch") as model:
        expected = [model.chat(r["messages"], max_new_tokens=4).text for r in chats(2)]
    assert [r["text"] for r in read_jsonl(job.output)] == expected

    embed = BatchJob(
        model=str(tiny_models["encoder"]),
        input=write_jsonl(tmp_path / "texts.jsonl", texts(5)),
        output=tmp_path / "vec.jsonl",
        task="embed",
        backend="torch",
        batch_size=2,
    )
    run_local(embed)
    rows = read_jsonl(embed.output)
    with tinylm.load(tiny_models["encoder"], backend="torch") as model:
        expected = model.embed([t["text"] for t in texts(5)])
    assert [r["id"] for r in rows] == [t["id"] for t in texts(5)]
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), expected, atol=1e-5)
    assert run_local(embed).written == 0  # resumed: nothing left to do


def test_a_prompt_the_model_refuses_is_an_error_row_not_a_failed_job(tiny_models, tmp_path):
    too_long = "word " * 5000
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "hi"}, {"prompt": too_long}])
    job = BatchJob(
        model=str(tiny_models["decoder"]),
        input=src,
        output=tmp_path / "o.jsonl",
        task="generate",
        backend="torch",
        generation={"max_new_tokens": 2},
    )
    run_local(job)
    rows = read_jsonl(job.output)
    assert "text" in rows[0] and rows[1]["error"]["type"] == "PromptTooLong"


def test_the_embedded_path_never_imports_ray(tiny_models, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", texts(2))
    code = (
        "import sys; from tinylm.cli import main; "
        f"rc = main(['batch', {str(tiny_models['encoder'])!r}, {str(src)!r}, {str(tmp_path / 'o.jsonl')!r}, "
        "'--task', 'embed', '--backend', 'torch']); "
        "assert rc == 0; print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert len(read_jsonl(tmp_path / "o.jsonl")) == 2


def test_ray_flag_without_ray_installed_says_how_to_install_it(tmp_path):
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    without_ray = tmp_path / "site"  # this environment's packages but Ray
    without_ray.mkdir()
    for entry in site.iterdir():
        if not entry.name.lower().startswith("ray"):
            (without_ray / entry.name).symlink_to(entry)
    src = write_jsonl(tmp_path / "in.jsonl", texts(1))
    code = (
        f"import sys; sys.path = [p for p in sys.path if p != {str(site)!r}] + [{str(without_ray)!r}]; "
        "from tinylm.cli import main; "
        f"sys.exit(main(['batch', 'm', {str(src)!r}, {str(tmp_path / 'o.jsonl')!r}, '--task', 'embed', '--ray']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    from tinylm.install import install_command

    assert f"error: Ray is not installed. Fix: {install_command('ray')}" in out.stderr


def test_kill_9_mid_job_then_rerun_gives_one_row_per_id_and_the_same_texts(tiny_models, tmp_path):
    n = 40
    src = write_jsonl(tmp_path / "in.jsonl", prompts(n))
    out = tmp_path / "out.jsonl"
    args = [str(tiny_models["decoder"]), str(src), str(out), "--task", "generate"]
    kill_9_then_rerun([*args, "--max-new-tokens", "12", "--batch-size", "1"], out, n)
    rows = by_id(read_jsonl(out))  # one row per id
    assert rows.keys() == {json.dumps(r.get("id", k + 1)) for k, r in enumerate(prompts(n))}
    assert rows == run_clean(tiny_models["decoder"], src, tmp_path / "clean.jsonl", "generate", max_new_tokens=12)


@pytest.mark.parametrize("flag", ["--workers", "--threads", "--batch-size"])
def test_counts_must_be_positive(flag, capsys):
    with pytest.raises(SystemExit):
        main(["batch", "m", "i", "o", "--task", "embed", flag, "0"])
    assert "must be 1 or more" in capsys.readouterr().err
