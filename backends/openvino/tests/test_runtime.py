"""Importing openvino for running models: without the conversion tools, which stay one attribute away."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("openvino", reason="the openvino runtime is not installed (pip install tinylm[openvino])")


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_runtime_imports_without_the_conversion_tools_which_load_on_first_use():
    out = _python(
        "import sys\n"
        "from tinylm_openvino.runtime import openvino\n"
        "ov = openvino()\n"
        "print('ovc' in str(sorted(sys.modules)), hasattr(ov, 'Core'))\n"
        "convert = ov.convert_model\n"
        "from openvino.tools.ovc import convert_model\n"
        "print(convert is convert_model, 'openvino.tools.ovc' in sys.modules)\n"
        "try:\n"
        "    ov.no_such_name\n"
        "except AttributeError as e:\n"
        "    print('AttributeError', e)\n"
    )
    assert out.splitlines() == [
        "False True",
        "True True",
        "AttributeError module 'openvino' has no attribute 'no_such_name'",
    ]


def test_an_openvino_imported_before_is_left_as_it_is():
    out = _python(
        "import openvino as first\n"
        "from tinylm_openvino.runtime import openvino\n"
        "print(openvino() is first, '__getattr__' in vars(first), first.convert_model.__module__)\n"
    )
    assert out == "True False openvino.tools.ovc.convert"
