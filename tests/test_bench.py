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


def test_quick_mode_prints_no_speed_up_without_a_like_for_like_reference(monkeypatch, capsys,
                                                                          tmp_path):
    """W6 analyses fewer models in quick mode, and its cost is not linear in them."""
    bench = _bench()
    fake = {"W6": {"seconds": 0.5, "cpu_seconds": 0.9, "detail": "median of 3", "peak_mb": 300,
                   "work": None, "work_detail": "40 of 151 models per path"},
            "W8": {"seconds": 1.0, "cpu_seconds": 1.9, "detail": "one run", "peak_mb": 300,
                   "work": 1000 / 10309, "work_detail": "1000 of 10309 spikes"}}
    monkeypatch.setattr(bench, "_run_in_child", lambda name, quick: dict(fake[name]))
    monkeypatch.setattr(bench, "reference_seconds", lambda: {"W6": 8.6, "W8": 190.0})
    out = tmp_path / "r.json"
    assert bench.main(["--quick", "--only", "W6,W8", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    import json
    res = json.loads(out.read_text())["workloads"]
    assert res["W6"]["speedup"] is None and "no like-for-like reference" in text
    assert round(res["W8"]["reference_seconds"], 2) == round(190.0 * 1000 / 10309, 2)


def test_reference_timings_are_read():
    refs = _bench().reference_seconds()
    assert refs["W1"] == 21.0 and refs["W2"] == 2.52
