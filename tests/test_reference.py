"""Every shared reference case, through the ``python -m flowdash.verify`` contract."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _shared import REFERENCE_DIR

CASES = sorted(REFERENCE_DIR.glob("*.json")) + sorted((REFERENCE_DIR / "nonstationary").glob("*.json"))
REPO = Path(__file__).resolve().parents[1]


def _rel_max(actual, expected):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert actual.shape == expected.shape
    return np.max(np.abs(actual - expected)) / np.max(np.abs(expected))


@pytest.fixture(scope="module", params=CASES, ids=[c.stem for c in CASES])
def case(request, tmp_path_factory):
    path = request.param
    out = tmp_path_factory.mktemp(path.stem) / "out.npz"
    run = subprocess.run([sys.executable, "-m", "flowdash.verify", str(path), str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return json.loads(path.read_text()), np.load(path.with_suffix(".npz")), np.load(out)


def test_reference_case_agrees(case):
    spec, ref, ours = case
    assert float(ours["seconds"]) > 0
    if "eval_model" in spec:
        for key in ("loglik", "loglik_only") + (("loglik_gt",) if "loglik_gt" in ref.files else ()):
            assert float(ours[key]) == pytest.approx(float(ref[key]), rel=1e-8), key
        for name in spec.get("grad_list", []):
            assert _rel_max(ours[f"grad_{name}"], ref[f"grad_{name}"]) < 1e-6, name
        return
    K = int(spec.get("datasamples", 1))
    ref_train, ours_train = np.atleast_2d(ref["logliks"]), np.atleast_2d(ours["logliks"])
    if K > 1:
        # The reference's multi-datasample training NLL is right only in its last column.
        ref_train, ours_train = ref_train[:, -1:], ours_train[:, -1:]
    assert np.max(np.abs(ours_train - ref_train) / np.abs(ref_train)) < 1e-6
    assert np.max(np.abs(ours["logliksCV"] - ref["logliksCV"]) / np.abs(ref["logliksCV"])) < 1e-6
    assert float(ours["logliksCV"].ravel()[0]) == pytest.approx(float(ref["logliksCV"].ravel()[0]), rel=1e-8)
    peq_ref = ref["results_peq"]
    assert ours["results_peq"].shape == peq_ref.shape
    per_epoch = np.max(np.abs(ours["results_peq"] - peq_ref), axis=(1, 2)) / np.max(peq_ref, axis=(1, 2))
    assert per_epoch.max() < 1e-5
    for key in ("results_p0", "results_D", "results_fr"):
        if key in ref.files:
            assert _rel_max(ours[key], ref[key]) < 1e-5, key


def test_verify_reports_a_missing_case(tmp_path):
    run = subprocess.run([sys.executable, "-m", "flowdash.verify", str(tmp_path / "nope.json"), str(tmp_path / "o.npz")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "cannot run" in run.stderr and "nope.json" in run.stderr
