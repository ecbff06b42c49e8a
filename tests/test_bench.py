"""bench/run.py compares like with like: a quick run's reference time is scaled to its work."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("flowdash_bench", REPO / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_mode_scales_the_reference_to_the_work_done(monkeypatch, capsys, tmp_path):
    bench = _bench()
    fake = {"W1": {"seconds": 0.02, "detail": "2 x 10 s", "work": 0.1,
                   "work_detail": "2 x 10 s of 2 x 100 s", "peak_mb": 200},
            "W2": {"seconds": 0.05, "detail": "median of 3 epochs", "peak_mb": 200},
            "startup": {"seconds": 1.4, "imports": 0.9, "kernels": 0.3, "peak_mb": 150,
                        "detail": "imports 0.90 s, kernel loading 0.30 s"}}
    monkeypatch.setattr(bench, "_run_in_child", lambda name, quick: dict(fake[name]))
    monkeypatch.setattr(bench, "reference_seconds", lambda: {"W1": 21.0, "W2": 2.52})
    out = tmp_path / "r.json"
    assert bench.main(["--quick", "--only", "W1,W2,startup", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "reference times are scaled to the work done" in text
    import json
    res = json.loads(out.read_text())["workloads"]
    assert res["W1"]["reference_seconds"] == 2.1 and round(res["W1"]["speedup"]) == 105
    assert res["W2"]["reference_seconds"] == 2.52                 # the same work in both modes
    assert "once per worker process" in text and "kernel loading" in text


def test_reference_timings_are_read():
    refs = _bench().reference_seconds()
    assert refs["W1"] == 21.0 and refs["W2"] == 2.52
