"""The models shipped inside the tinylm package: registered, offline, small (float16 or int8), with complete cards."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tinylm.bundled import MODELS_DIR
from tinylm.plugins import get_manager
from tinylm.weights import SafetensorsFile

BUNDLED = ["support-assistant", "support-embedder"]
CARD_SECTIONS = ["## How it was made", "## Evaluation", "## Data and licenses", "## Limits"]


@pytest.mark.parametrize("name", BUNDLED)
def test_registered_with_the_card_title(name):
    entry = get_manager().models()[name]
    assert entry.path == MODELS_DIR / name
    assert entry.description.startswith(f"{name}: ")


@pytest.mark.parametrize("name", BUNDLED)
def test_small_float16_or_int8_and_a_complete_card(name):
    folder = MODELS_DIR / name
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size <= 25e6, f"{name} is {size / 1e6:.1f} MB, over the 25 MB bundle budget"
    weights = SafetensorsFile(folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    stored = {weights.get(k).dtype.name for k in weights.keys()}
    if "quantization_config" in config:  # int8 matrices, each with its float16 per-row scale
        assert stored == {"float16", "int8"}
        int8 = [k for k in weights.keys() if weights.get(k).dtype.name == "int8"]
        assert all(f"{k}_scale" in weights.keys() for k in int8)
    else:
        assert stored == {"float16"}
    assert config["dtype"] == "float16"
    card = (folder / "README.md").read_text(encoding="utf-8")
    for section in CARD_SECTIONS:
        assert section in card, f"{name}'s card lacks {section!r}"
    assert "license" in card.lower() and "tinylm" in card


def test_they_load_offline_in_a_fresh_process(tmp_path):
    """No network, an empty cache, no hub: the bundled names resolve to the package's own folders."""
    code = (
        "import tinylm\n"
        "m = tinylm.load('support-assistant', backend='torch')\n"
        "print(len(m.chat([{'role': 'user', 'content': 'hi'}], max_new_tokens=4).token_ids))\n"
        "print(tinylm.load('support-embedder', backend='torch').embed(['hi']).shape)\n"
    )
    env = {**os.environ, "TINYLM_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    env.update({"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"})  # any request would fail
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4", "(1,", "384)"]
