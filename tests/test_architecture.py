"""Dependencies point one way: the numerical core never imports the web stack."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_core_imports_neither_dash_nor_diskcache():
    code = ("import sys, pkgutil, importlib, flowdash.core as c\n"
            "for m in pkgutil.iter_modules(c.__path__): importlib.import_module('flowdash.core.' + m.name)\n"
            "importlib.import_module('flowdash.verify')\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dash', 'diskcache', 'plotly', 'flask'))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
