"""Many viewers, many fits, faults, and a year of runs: flowdash under load.

    python bench/load.py [--config both|redis|embedded] [--quick] [--json FILE]
                         [--viewers 40] [--fits 8] [--epochs 300] [--runs 10000]
                         [--gunicorn-workers 2] [--threads 8] [--skip load1,load2,runs]

For each configuration it starts everything on this machine, on loopback
ports, in a temporary folder:

* ``redis``: a ``redis-server`` (append-only file, ``appendfsync everysec``:
  the store and the queue survive a restart), two Celery workers
  (``celery -A flowdash.tasks worker --concurrency 1`` each, with
  ``FLOWDASH_BROKER`` and ``FLOWDASH_STORE=redis://…``) and gunicorn
  (``app:wsgi()``, ``--workers 2 --threads 8``);
* ``embedded``: ``python app.py --workers 2`` (its warm worker pool, the
  diskcache store; no other service).

Then it runs, in order:

* **Load 1**: ``--fits`` Example-1-like fits (the 2020 Fig. 3 fit of 2 × 100 s
  of spikes, ``--epochs`` epochs each) are queued at once through the job API
  while ``--viewers`` simulated viewers poll them the way the Fit page does:
  the Fit page's own callback request (POST ``/_dash-update-component``, built
  from ``/_dash-dependencies``: the poll's inputs and its cursor, one request
  at a time, the next tick of the 500 ms interval after the answer) plus the
  page's connection check (``/_flowdash/alive`` every 2 s). Half the viewers
  show the paper layout, half the overlay. Reports p50/p95/p99 poll latency,
  fits completed, epochs recorded against expected, and the peak memory (RSS)
  of the web server, the workers and Redis.
* **Load 2**: the same, with faults while it runs: one worker that runs a fit
  killed with ``kill -9``; the web server restarted; Redis restarted (redis
  only). Checks that no epoch is lost or duplicated (each run's epoch log is
  0, 1, …, n − 1, and a done run has every epoch), that every run ends in a
  final status that says what happened, and that every interrupted run can
  be continued from its stored checkpoint: one to its last epoch (with
  ``jobs.continue_run`` in the workers where the job layer has it, else
  ``fit(resume=…)`` in this process), the others a few epochs on; the epochs
  a continuation recomputes must equal the stored ones.
* **A year of runs**: ``--runs`` runs created through the store API; headless
  Chromium opens the Runs page: the time until the table shows its rows, a
  page turn and a search, and the size of every poll (request and answer)
  from the browser's network log while a run on the page is active.

Every request loop is bounded in count and time; everything it starts is
stopped, and its folder removed, on exit and on Ctrl-C. The numbers depend
on the machine and on what else runs there.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PY = sys.executable
BIN = Path(PY).parent
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
CHROMIUM = os.environ.get("FLOWDASH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
#: The Fit page's interval and connection check, s.
POLL_EVERY, ALIVE_EVERY = 0.5, 2.0
#: The Fig. 3 fit (the Fit page's preset), on Example 1.
FIT_FIELDS = dict(dataset="example1", init_model="fig3", peq_override="cos_square",
                  optimizer="GD", lr={"F": "0.005", "F0": "0.005", "D": "0.1", "Fr": "0.0005",
                                      "C": "1"}, alpha="0.05", params=["F"], batches="1",
                  nv="64", snapshots="1, 6, 13, 50", seed="0", pace="0")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(q / 100 * (len(values) - 1)))))
    return values[k]


# ---------------------------------------------------------------------------
# processes and their cleanup
# ---------------------------------------------------------------------------
class Stack:
    """The processes and the folder of one bench run; :meth:`close` removes them all."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="flowdash-load-"))
        self.procs: list[subprocess.Popen] = []
        self.logs = []

    def start(self, name: str, cmd: list[str], env: dict | None = None,
              cwd: Path = REPO) -> subprocess.Popen:
        out = open(self.tmp / f"{name}.log", "a")
        self.logs.append(out)
        full_env = dict(os.environ, PYTHONUNBUFFERED="1",
                        PYTHONPATH=os.pathsep.join(p for p in (str(REPO),
                                                               os.environ.get("PYTHONPATH"))
                                                   if p))
        full_env.update(env or {})
        # a session of its own: Ctrl-C reaches this script, which stops it in order
        proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        proc.name = name
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 15.0) -> None:
        """SIGTERM to the process's group (it started it), then SIGKILL after ``grace`` s."""
        if proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        try:   # what the group left behind (e.g. a pool's workers in their own sessions)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc in self.procs:
            self.procs.remove(proc)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.tmp / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) \
            if path.exists() else ""

    def close(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc, grace=10.0)
        for out in self.logs:
            out.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> float:
    """Wait until ``url`` answers; returns the seconds waited."""
    t0 = time.time()
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return time.time() - t0
        except OSError:
            if (proc is not None and proc.poll() is not None) or time.time() - t0 > timeout:
                raise RuntimeError(f"{url} did not answer within {timeout} s")
            time.sleep(0.1)


# ---------------------------------------------------------------------------
# the two configurations
# ---------------------------------------------------------------------------
class Deployment:
    name = ""
    url = ""
    location = ""
    broker = None

    def __init__(self, stack: Stack, args):
        self.stack, self.args = stack, args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.web = None

    def env(self) -> dict:
        env = {"FLOWDASH_STORE": self.location}
        if self.broker:
            env["FLOWDASH_BROKER"] = self.broker
        return env

    def open_store(self):
        from flowdash.store import open_store
        return open_store(self.location)

    def stop_web(self) -> None:
        self.stack.stop(self.web, grace=20.0)

    def restart_web(self) -> float:
        """Stop the web server (SIGTERM) and start it again; returns the seconds it was away."""
        t0 = time.time()
        self.stop_web()
        self.start_web()
        wait_http(self.url + "/_flowdash/alive", 120, self.web)
        return time.time() - t0

    def memory(self) -> dict:
        """RSS in MB of the web server, the workers and Redis (process trees)."""
        import psutil

        def rss(procs):
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            return total / 2**20
        return {group: rss(procs) for group, procs in self.process_groups().items()}

    @staticmethod
    def tree(pid):
        import psutil
        try:
            p = psutil.Process(pid)
            return [p] + p.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def worker_pid_of(self, run_id: str) -> int | None:
        """The pid of the process that runs ``run_id`` (from the workers' heartbeats)."""
        store = self.open_store()
        try:
            for beat in store.heartbeats().values():
                if beat.get("run") == run_id:
                    return int(beat["pid"])
        finally:
            store.close()
        return None


class Embedded(Deployment):
    """``python app.py --workers 2`` on a store folder."""
    name = "embedded"

    def __init__(self, stack, args):
        super().__init__(stack, args)
        self.location = str(stack.tmp / "store")

    def start(self) -> None:
        """Nothing runs before the store is prepared (the pool would take its runs)."""

    def start_services(self) -> None:
        self.start_web()
        wait_http(self.url + "/_flowdash/alive", 120, self.web)

    def start_web(self) -> None:
        self.web = self.stack.start("app", [PY, "app.py", "--port", str(self.port), "--store",
                                            self.location, "--workers", "2"])

    def wait_workers(self, timeout=120.0) -> None:
        _wait_beats(self, 2, timeout)

    def process_groups(self) -> dict:
        tree = self.tree(self.web.pid) if self.web else []
        return {"server": tree[:1], "workers": tree[1:]}


class RedisCelery(Deployment):
    """redis-server, two Celery workers and gunicorn."""
    name = "redis"

    def __init__(self, stack, args):
        super().__init__(stack, args)
        self.redis_port = free_port()
        self.redis_dir = stack.tmp / "redis"
        self.redis_dir.mkdir()
        self.location = f"redis://127.0.0.1:{self.redis_port}/0"
        self.broker = f"redis://127.0.0.1:{self.redis_port}/1"
        self.redis = None
        self.celery = []

    def start_redis(self) -> None:
        # appendonly: every write is in the append-only file; a restart (SIGTERM
        # flushes it) or a crash (at most the last second) keeps the store and the queue
        self.redis = self.stack.start("redis", [
            REDIS_SERVER, "--port", str(self.redis_port), "--bind", "127.0.0.1",
            "--dir", str(self.redis_dir), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--protected-mode", "yes", "--loglevel", "warning"])
        import redis
        client = redis.Redis(port=self.redis_port)
        t0 = time.time()
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.BusyLoadingError:
                time.sleep(0.05)
            except redis.ConnectionError:
                if self.redis.poll() is not None or time.time() - t0 > 30:
                    raise RuntimeError("redis-server did not start:\n"
                                       + self.stack.log_tail("redis"))
                time.sleep(0.05)
        client.close()

    def restart_redis(self) -> float:
        """Stop Redis (SIGTERM: it writes its append-only file) and start it again;
        returns the seconds it was away."""
        t0 = time.time()
        self.stack.stop(self.redis, grace=30.0)
        self.start_redis()
        return time.time() - t0

    def start(self) -> None:
        self.start_redis()

    def start_services(self) -> None:
        for k in range(2):
            self.celery.append(self.stack.start(f"celery{k}", [
                str(BIN / "celery"), "-A", "flowdash.tasks", "worker", "--concurrency", "1",
                "--pool", "prefork", "-n", f"load{k}@%h", "-Q", "flowdash", "--loglevel",
                "warning", "--without-gossip", "--without-mingle"], env=self.env()))
        self.start_web()
        wait_http(self.url + "/_flowdash/alive", 120, self.web)

    def start_web(self) -> None:
        self.web = self.stack.start("gunicorn", [
            str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.args.gunicorn_workers), "--threads", str(self.args.threads),
            "--timeout", "120", "--graceful-timeout", "10", "app:wsgi()"], env=self.env())

    def wait_workers(self, timeout=120.0) -> None:
        _wait_beats(self, 2, timeout)

    def process_groups(self) -> dict:
        workers = [p for c in self.celery for p in self.tree(c.pid)]
        return {"server": self.tree(self.web.pid) if self.web else [], "workers": workers,
                "redis": self.tree(self.redis.pid) if self.redis else []}


def _wait_beats(dep: Deployment, n: int, timeout: float) -> None:
    """Until ``n`` workers beat (Celery's write theirs once they ran a task)."""
    if dep.name == "redis":   # Celery workers beat from their first task: wait for the pool
        t0 = time.time()
        while time.time() - t0 < timeout:
            out = subprocess.run([str(BIN / "celery"), "-A", "flowdash.tasks", "inspect",
                                  "ping", "--timeout", "2"], cwd=REPO, capture_output=True,
                                 text=True, env=dict(os.environ, **dep.env(),
                                                     PYTHONPATH=str(REPO)))
            if out.stdout.count("pong") >= n:
                return
            time.sleep(1)
        raise RuntimeError("the Celery workers did not start:\n" + dep.stack.log_tail("celery0"))
    store = dep.open_store()
    try:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if len(store.heartbeats()) >= n:
                return
            time.sleep(0.2)
    finally:
        store.close()
    raise RuntimeError(f"{n} workers did not start:\n" + dep.stack.log_tail("app"))


# ---------------------------------------------------------------------------
# the store: Example 1, fits, a year of runs
# ---------------------------------------------------------------------------
def prepare(dep: Deployment, quick: bool) -> None:
    """The Fig. 3 model and Example 1's data (2 × 100 s; 2 × 30 s in quick mode)."""
    from flowdash import jobs
    from flowdash.pages.model.form import PRESETS

    store = dep.open_store()
    try:
        store.save_model("fig3", PRESETS["fig3"][1])
        rid = jobs.submit(store, "generation", dict(
            model="fig3", n_trials=2, duration=30.0 if quick else 100.0, dt=1e-4, seed=0,
            with_trial_end=False, val_fraction=0.5, dataset_name="example1"))
        status = jobs.execute(store, rid)
        if status != "done":
            raise RuntimeError(f"could not make Example 1: {store.get_run(rid)}")
    finally:
        store.close()


def submit_fits(dep: Deployment, n: int, epochs: int, tag: str) -> list[str]:
    """``n`` fits queued at once through the job API (and to Celery with a broker)."""
    from flowdash import jobs
    from flowdash.pages.fit.view import values_from_fields

    values = values_from_fields(dict(FIT_FIELDS, epochs=str(epochs)))
    store = dep.open_store()
    try:
        with broker_env(dep):
            return [jobs.submit(store, "fit", values, name=f"{tag} fit {k + 1}")
                    for k in range(n)]
    finally:
        store.close()


@contextlib.contextmanager
def broker_env(dep: Deployment):
    """``FLOWDASH_BROKER`` as the deployment's (the job API sends queued runs there)."""
    old = os.environ.get("FLOWDASH_BROKER")
    if dep.broker:
        os.environ["FLOWDASH_BROKER"] = dep.broker
    else:
        os.environ.pop("FLOWDASH_BROKER", None)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("FLOWDASH_BROKER", None)
        else:
            os.environ["FLOWDASH_BROKER"] = old


# ---------------------------------------------------------------------------
# simulated viewers of the Fit page
# ---------------------------------------------------------------------------
class FitPoll:
    """The Fit page's poll as the browser sends it (from ``/_dash-dependencies``)."""

    def __init__(self, url: str):
        deps = json.loads(urllib.request.urlopen(url + "/_dash-dependencies", timeout=30).read())
        spec = next(d for d in deps if "fit-poll-done.data" in d["output"])
        self.output = spec["output"]
        self.outputs = [dict(zip(("id", "property"), part.rsplit(".", 1)))
                        for part in spec["output"].strip(".").split("...")]
        self.inputs = spec["inputs"]
        self.state = spec["state"]
        unknown = {f"{i['id']}.{i['property']}" for i in self.inputs} - set(self.values(None, None, None))
        if unknown:  # the page's poll has changed: say so before any viewer starts
            raise SystemExit(f"bench/load.py does not know the Fit page poll's inputs {sorted(unknown)}; "
                             "add them to FitPoll.values")

    @staticmethod
    def values(run_id, view, tick) -> dict:
        """The poll's inputs as the page sends them (the NLL panel at its default scale)."""
        return {"fit-poll-tick.data": tick, "app-active-fit.data": run_id,
                "fit-view.value": view, "fit-nll-scale.value": "shifted"}

    def body(self, run_id: str, view: str, tick: dict, cursor, fresh: bool) -> bytes:
        values = self.values(run_id, view, tick)
        changed = "app-active-fit.data" if fresh else "fit-poll-tick.data"
        state = [dict(s) for s in self.state]
        for s in state:
            if f"{s['id']}.{s['property']}" == "fit-cursor.data" and cursor is not None:
                s["value"] = cursor
        return json.dumps({
            "output": self.output, "outputs": self.outputs,
            "inputs": [dict(i, value=values[f"{i['id']}.{i['property']}"]) for i in self.inputs],
            "changedPropIds": [changed], "parsedChangedPropsIds": [changed],
            "state": state}).encode()


class Client:
    """One keep-alive HTTP connection (reconnects after an error)."""

    def __init__(self, port: int):
        self.port, self.conn = port, None

    def request(self, method, path, body=None, timeout=30.0):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, data
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise OSError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Audience:
    """``n`` viewers following the running fits; each polls like the Fit page."""

    def __init__(self, dep: Deployment, run_ids: list[str], n: int, deadline: float):
        self.dep, self.run_ids, self.n, self.deadline = dep, run_ids, n, deadline
        self.poll = FitPoll(dep.url)
        self.lock = threading.Lock()
        self.latencies, self.alive_latencies, self.fresh_latencies = [], [], []
        self.steady_latencies = []
        self.errors, self.bytes_in, self.polls = {}, 0, 0
        self.running, self.queued, self.final = [], [], set()
        self.stop = threading.Event()
        self.threads = []

    def watch(self):
        """Which runs are running or queued (the class follows the running ones)."""
        store = self.dep.open_store()
        try:
            while not self.stop.is_set() and time.time() < self.deadline:
                try:
                    records = store.get_runs(self.run_ids)
                except Exception:   # Redis restarting: the next look will do
                    self.stop.wait(0.5)
                    continue
                with self.lock:
                    self.running = [r["id"] for r in records if r["status"] == "running"]
                    self.queued = [r["id"] for r in records if r["status"] == "queued"]
                    self.final = {r["id"] for r in records
                                  if r["status"] not in ("queued", "running")}
                if len(self.final) == len(self.run_ids):
                    self.stop.set()
                self.stop.wait(0.5)
        finally:
            store.close()

    def target(self, i: int):
        with self.lock:
            live = self.running or self.queued
            return live[i % len(live)] if live else None

    def error(self, what: str):
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1

    def viewer(self, i: int):
        client, alive = Client(self.dep.port), Client(self.dep.port)
        view = "paper" if i % 2 else "overlay"
        run, cursor, n, t_alive = None, None, 0, 0.0
        max_polls = int((self.deadline - time.time()) / POLL_EVERY) + 10
        t_start = time.time()
        for _ in range(max_polls):
            if self.stop.is_set() or time.time() > self.deadline:
                break
            target = run if run is not None and run not in self.final else self.target(i)
            if target is None:
                time.sleep(POLL_EVERY)
                continue
            fresh = target != run
            if fresh:
                run, cursor = target, None
            n += 1
            tick = {"n": n, "t": int(time.time() * 1000)}
            body = self.poll.body(run, view, tick, cursor, fresh)
            t0 = time.perf_counter()
            try:
                status, data = client.request("POST", "/_dash-update-component", body)
            except OSError as exc:
                self.error(type(exc).__name__)
                time.sleep(POLL_EVERY)
                continue
            dt = time.perf_counter() - t0
            if status in (200, 204):   # opening a run (a whole drawing) or a live poll
                with self.lock:
                    (self.fresh_latencies if fresh else self.steady_latencies).append(dt)
            if status == 200:
                with self.lock:
                    self.latencies.append(dt)
                    self.bytes_in += len(data)
                    self.polls += 1
                out = json.loads(data).get("response", {})
                cursor = (out.get("fit-cursor") or {}).get("data", cursor)
                if (out.get("fit-interval") or {}).get("disabled") is True:
                    self.final.add(run)   # this viewer's run ended: follow another
            elif status == 204:
                with self.lock:
                    self.latencies.append(dt)
                    self.polls += 1
            else:
                self.error(f"HTTP {status}")
                cursor = None if status >= 500 else cursor
            if time.time() - t_alive >= ALIVE_EVERY:   # the page's connection check
                t_alive = time.time()
                t0 = time.perf_counter()
                try:
                    status, _ = alive.request("GET", "/_flowdash/alive", timeout=2.5)
                    if status == 200:
                        with self.lock:
                            self.alive_latencies.append(time.perf_counter() - t0)
                except OSError:
                    pass
            # the interval ticks every 0.5 s; the gate passes the first tick after the answer
            elapsed = time.time() - t_start
            time.sleep(POLL_EVERY - elapsed % POLL_EVERY)
        client.close()
        alive.close()

    def start(self):
        watcher = threading.Thread(target=self.watch, daemon=True)
        watcher.start()
        self.threads = [watcher] + [threading.Thread(target=self.viewer, args=(i,), daemon=True)
                                    for i in range(self.n)]
        for k, t in enumerate(self.threads[1:]):
            t.start()
            time.sleep(POLL_EVERY / max(self.n, 1))   # viewers arrive, not all in one instant

    def join(self):
        for t in self.threads:
            t.join(max(1.0, self.deadline - time.time() + 30))
        self.stop.set()

    def summary(self) -> dict:
        ms = [1000 * v for v in self.latencies]
        return {"polls": self.polls,
                "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
                "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None,
                "mean_kb": self.bytes_in / max(self.polls, 1) / 1024,
                "live_polls": len(self.steady_latencies),
                **{f"live_p{q}_ms": percentile([1000 * v for v in self.steady_latencies], q)
                   for q in (50, 95, 99)},
                "first_polls": len(self.fresh_latencies),
                "first_poll_p50_ms": percentile([1000 * v for v in self.fresh_latencies], 50),
                "first_poll_p95_ms": percentile([1000 * v for v in self.fresh_latencies], 95),
                "alive_p95_ms": percentile([1000 * v for v in self.alive_latencies], 95),
                "errors": dict(self.errors)}


class Memory:
    """Samples the RSS of each process group every second; keeps the peaks."""

    def __init__(self, dep: Deployment):
        self.dep, self.peak, self.stop = dep, {}, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            try:
                for group, mb in self.dep.memory().items():
                    self.peak[group] = max(self.peak.get(group, 0.0), mb)
            except Exception:  # a process restarting
                pass
            self.stop.wait(1.0)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


# ---------------------------------------------------------------------------
# checks of what the runs left
# ---------------------------------------------------------------------------
def check_runs(dep: Deployment, run_ids: list[str], epochs: int) -> dict:
    """Each run's final status, and its epoch log against the epochs it should have."""
    store = dep.open_store()
    out = {"runs": {}, "epochs_recorded": 0, "epochs_expected": 0, "lost": 0, "duplicated": 0,
           "final": 0, "done": 0, "unexplained": 0}
    try:
        for rid in run_ids:
            rec = store.get_run(rid)
            rows = store.read_epochs(rid, snapshots=False)
            seen = [int(r.get("epoch", -1)) for r in rows]
            latest = store.get_latest(rid) or {}
            ckpt = store.get_checkpoint(rid)
            ckpt_epoch = None
            if ckpt is not None:
                from flowdash.core.fitting import FitCheckpoint
                ckpt_epoch = FitCheckpoint.from_bytes(ckpt).epoch
            n = len(seen)
            # a done run has every epoch; another has every epoch up to the last it recorded
            expected = epochs + 1 if rec["status"] == "done" else n
            gaps = sorted(set(range(max(seen, default=-1) + 1)) - set(seen))
            dups = n - len(set(seen))
            lost = max(0, expected - n) + len(gaps)
            final = rec["status"] in ("done", "cancelled", "failed", "interrupted")
            explained = rec["status"] == "done" or bool(rec.get("error"))
            out["runs"][rid] = {
                "name": rec["name"], "status": rec["status"], "error": rec.get("error"),
                "epochs": n, "expected": expected, "lost": lost, "duplicated": dups,
                "in_order": seen == list(range(n)), "latest_epoch": latest.get("epoch"),
                "checkpoint_epoch": ckpt_epoch}
            out["epochs_recorded"] += n
            out["epochs_expected"] += expected
            out["lost"] += lost
            out["duplicated"] += dups
            out["final"] += final
            out["done"] += rec["status"] == "done"
            out["unexplained"] += not (final and explained)
    finally:
        store.close()
    return out


NO_CHECKPOINT = ("no saved state: its worker was killed (kill -9) before the fit saved a "
                 "checkpoint, and this version saves one only when a fit ends, is cancelled "
                 "or is interrupted by a signal; it cannot be continued")


def check_continue(dep: Deployment, run_ids: list[str], more: int = 3,
                   timeout: float = 900.0) -> dict:
    """Can every interrupted run be continued from its stored checkpoint?

    One of them is continued to its last epoch: through ``jobs.continue_run``
    (the workers run it, the same run's log grows) where the job layer has it,
    else here with ``fit(resume=…)``. The others are continued here for
    ``more`` epochs past their last stored one. Wherever a continuation
    recomputes a stored epoch, the two must agree (the continuation is exact).
    """
    import dataclasses

    import numpy as np

    from flowdash import jobs
    from flowdash.core.fitting import FitCheckpoint, fit
    from flowdash.settings import fit_options

    store = dep.open_store()
    results, finished_one = {}, False
    try:
        for rid in run_ids:
            rec = store.get_run(rid)
            if rec["status"] != "interrupted":
                continue
            blob = store.get_checkpoint(rid)
            if blob is None:
                results[rid] = {"continued": False, "why": NO_CHECKPOINT}
                continue
            ckpt = FitCheckpoint.from_bytes(blob)
            s = rec["settings"]
            total = int(s["max_epochs"])
            stored = {int(r["epoch"]): r for r in store.read_epochs(rid, snapshots=False)}
            if not finished_one and hasattr(jobs, "continue_run"):
                finished_one = True
                results[rid] = _continue_in_workers(dep, store, rid, ckpt.epoch, total,
                                                    stored, timeout)
                continue
            train, val, _ = jobs.train_val(store, s["dataset"])
            model = jobs.build_model(jobs.fit_initial_spec(store, rec), n_datasamples=len(train))
            if not finished_one:       # this one to its end, the others a few epochs on
                stop, finished_one, how = total, True, "to its last epoch, here"
            else:
                stop = min(total, max(max(stored, default=0), ckpt.epoch) + more)
                how = f"{more} epochs past its log, here"
            options = dataclasses.replace(fit_options(s), max_epochs=max(stop, ckpt.epoch + 1))
            got = {}

            def on_epoch(e):
                got[int(e.epoch)] = float(np.sum(e.nll_train))
            t0 = time.time()
            result = fit(model, train[0] if len(train) == 1 else train,
                         None if val is None else (val[0] if len(val) == 1 else val), options,
                         on_epoch=on_epoch, resume=ckpt)
            compared = [k for k in got if k in stored]
            worst = max((abs(got[k] - sum(stored[k]["nll_train"]))
                         / max(1.0, abs(got[k])) for k in compared), default=0.0)
            results[rid] = {"continued": True, "how": how, "from_epoch": ckpt.epoch,
                            "to_epoch": max(got, default=ckpt.epoch),
                            "finished": max(got, default=-1) == total,
                            "seconds": round(time.time() - t0, 1),
                            "final_nll_train": got.get(total),
                            "stopped": bool(result.stopped),
                            "epochs_compared": len(compared), "max_rel_diff": worst,
                            "agree": worst < 1e-9}
    finally:
        store.close()
    return results


def _continue_in_workers(dep, store, rid, from_epoch, total, stored, timeout) -> dict:
    """``jobs.continue_run`` to the run's last epoch; wait until it is final."""
    from flowdash import jobs

    t0 = time.time()
    with broker_env(dep):
        jobs.continue_run(store, rid, total - from_epoch)
    while time.time() - t0 < timeout:
        rec = store.get_run(rid)
        if rec["status"] not in ("queued", "running"):
            break
        time.sleep(0.5)
    rows = store.read_epochs(rid, snapshots=False)
    seen = [int(r["epoch"]) for r in rows]
    changed = [k for k in stored if k > from_epoch and k < len(rows)
               and rows[k]["nll_train"] != stored[k]["nll_train"]]
    return {"continued": True, "how": "jobs.continue_run, in the workers",
            "from_epoch": from_epoch, "status": rec["status"], "error": rec.get("error"),
            "finished": rec["status"] == "done" and seen == list(range(total + 1)),
            "seconds": round(time.time() - t0, 1), "epochs": len(seen),
            "in_order": seen == list(range(len(seen))), "stored_epochs_changed": len(changed)}


# ---------------------------------------------------------------------------
# the loads
# ---------------------------------------------------------------------------
def run_load(dep: Deployment, args, tag: str, faults: bool) -> dict:
    run_ids = submit_fits(dep, args.fits, args.epochs, tag)
    t0 = time.time()
    deadline = t0 + args.max_minutes * 60
    audience = Audience(dep, run_ids, args.viewers, deadline)
    events = []
    with Memory(dep) as memory:
        audience.start()
        if faults:
            events = inject_faults(dep, audience, t0, deadline)
        audience.join()
    store = dep.open_store()
    try:   # every run final (or the time is up)
        while time.time() < deadline + 60:
            if all(r["status"] not in ("queued", "running") for r in store.get_runs(run_ids)):
                break
            time.sleep(0.5)
    finally:
        store.close()
    out = {"seconds": round(time.time() - t0, 1), "viewers": args.viewers, "fits": args.fits,
           "epochs_per_fit": args.epochs, "polls": audience.summary(),
           "memory_peak_mb": {k: round(v, 1) for k, v in memory.peak.items()},
           "faults": events}
    out.update(check_runs(dep, run_ids, args.epochs))
    if faults:
        out["continue"] = check_continue(dep, run_ids)
    return out


def inject_faults(dep: Deployment, audience: Audience, t0: float, deadline: float) -> list:
    """kill -9 of a worker mid-fit, a web server restart, a Redis restart (redis only)."""
    events = []

    def running_fit(min_epochs=3, timeout=120):
        store = dep.open_store()
        try:
            end = time.time() + timeout
            while time.time() < end:
                try:
                    for rid in audience.run_ids:
                        rec = store.get_run(rid)
                        if rec["status"] == "running" and store.n_epochs(rid) >= min_epochs:
                            return rid
                except Exception:
                    pass
                time.sleep(0.3)
        finally:
            store.close()
        return None

    rid = running_fit()
    pid = dep.worker_pid_of(rid) if rid else None
    if pid:
        os.kill(pid, signal.SIGKILL)   # a process this script started (a worker of its stack)
        events.append({"at_s": round(time.time() - t0, 1), "fault": "kill -9 worker",
                       "pid": pid, "run": rid})
        log(f"  kill -9 worker {pid} running {rid}")
    else:
        events.append({"at_s": round(time.time() - t0, 1), "fault": "kill -9 worker",
                       "skipped": "no running fit found"})
    time.sleep(min(20.0, max(5.0, (deadline - time.time()) / 20)))
    if running_fit(timeout=60):
        away = dep.restart_web()
        events.append({"at_s": round(time.time() - t0, 1), "fault": "web server restarted",
                       "away_s": round(away, 1)})
        log(f"  web server restarted ({away:.1f} s away)")
    if isinstance(dep, RedisCelery):
        time.sleep(10.0)
        if running_fit(timeout=60):
            away = dep.restart_redis()
            events.append({"at_s": round(time.time() - t0, 1), "fault": "redis restarted",
                           "away_s": round(away, 1)})
            log(f"  redis restarted ({away:.1f} s away)")
    return events


# ---------------------------------------------------------------------------
# a year of runs: the Runs page with many runs
# ---------------------------------------------------------------------------
def make_runs(dep: Deployment, n: int) -> float:
    """``n`` finished runs through the store API (names, datasets, kinds and statuses
    varied); returns the seconds it took."""
    store = dep.open_store()
    t0 = time.time()
    try:
        fit = next((r for r in store.list_runs("fit")), None)
        settings = fit["settings"] if fit else {}
        refs = fit["refs"] if fit else {}
        statuses = ("done", "done", "done", "failed", "cancelled", "interrupted")
        for k in range(n):
            if k % 10 == 9:
                rid = store.create_run("generation", f"generate year-{k % 97}",
                                       {"dataset_name": f"year-{k % 97}", "model": "fig3"},
                                       {"dataset": f"year-{k % 97}", "model": "fig3"})
            else:
                rid = store.create_run("fit", f"run {k} of the year", settings,
                                       dict(refs, dataset=f"year-{k % 97}"))
            status = statuses[k % len(statuses)]
            store.finish_run(rid, status, error=None if status == "done" else f"{status} (bench)")
            if k and k % 2000 == 0:
                log(f"  {k} runs made ({time.time() - t0:.0f} s)")
    finally:
        store.close()
    return time.time() - t0


def searched_run(n: int) -> int:
    """The number k of a fit that :func:`make_runs` named ``run k of the year``."""
    k = n // 2
    return k - 1 if k % 10 == 9 else k


RUNS_ROWS = "() => document.querySelectorAll('#runs-body tr').length"
FIRST_ROW = ("() => { const r = document.querySelector('#runs-body tr'); "
             "return r ? r.id : null; }")


def runs_page(dep: Deployment, n: int, watch_s: float) -> dict:
    """Open the Runs page in headless Chromium with ``n`` runs in the store."""
    from playwright.sync_api import sync_playwright

    made = make_runs(dep, n)
    active = submit_fits(dep, 1, 2000, "runs-page")      # a live run on the first page
    out = {"runs": n, "make_seconds": round(made, 1)}
    polls = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})

        def on_response(resp):
            req = resp.request
            if "_dash-update-component" in req.url and "runs-body" in (req.post_data or ""):
                try:
                    body = resp.body()
                except Exception:
                    body = b""
                timing = req.timing   # ms from the request's start
                polls.append({"t": time.time(), "request": len(req.post_data or ""),
                              "response": len(body), "status": resp.status,
                              "server_ms": timing["responseStart"] - timing["requestStart"]
                              if timing.get("responseStart", -1) >= 0 else None,
                              "trigger": json.loads(req.post_data).get("changedPropIds")})
        page.on("response", on_response)
        t0 = time.time()
        page.goto(dep.url + "/runs", wait_until="domcontentloaded")
        out["html_s"] = round(time.time() - t0, 2)
        page.wait_for_function(f"({RUNS_ROWS})() > 0", timeout=120000)
        out["table_s"] = round(time.time() - t0, 2)
        first = next((q for q in polls if q["status"] == 200), None)
        # the first table answer: the server's time (request sent → first byte) and size
        out["first_table_server_ms"] = first and first["server_ms"]
        out["first_table_kb"] = first and round((first["request"] + first["response"]) / 1024, 1)
        # usable: a page turn and a search answer
        first = page.evaluate(FIRST_ROW)
        t1 = time.time()
        page.locator("#runs-pager a.page-link", has_text="›").first.click()
        page.wait_for_function(f"({FIRST_ROW})() !== {json.dumps(first)}", timeout=60000)
        out["next_page_s"] = round(time.time() - t1, 2)
        t1 = time.time()
        page.fill("#runs-search", f"run {searched_run(n)} of")   # names one run
        page.wait_for_function("document.querySelector('#runs-count').innerText."
                               "endsWith(' of 1')", timeout=60000)
        out["search_s"] = round(time.time() - t1, 2)
        page.fill("#runs-search", "")
        page.wait_for_function(f"({RUNS_ROWS})() > 1", timeout=60000)
        t_watch = time.time()
        page.wait_for_timeout(watch_s * 1000)
        browser.close()
    ticks = [q for q in polls if q["t"] >= t_watch and q["trigger"] == ["runs-interval.n_intervals"]]
    sizes = [q["request"] + q["response"] for q in ticks]
    out.update(polls=len(ticks), poll_max_kb=round(max(sizes, default=0) / 1024, 2),
               poll_median_kb=round(statistics.median(sizes) / 1024, 2) if sizes else None,
               poll_statuses=sorted({q["status"] for q in ticks}))
    store = dep.open_store()
    try:
        from flowdash import jobs
        for rid in active:
            jobs.cancel(store, rid)
    finally:
        store.close()
    return out


# ---------------------------------------------------------------------------
def run_config(name: str, args) -> dict:
    stack = Stack()
    result = {"config": name}
    try:
        dep = (RedisCelery if name == "redis" else Embedded)(stack, args)
        log(f"[{name}] starting in {stack.tmp}")
        dep.start()
        prepare(dep, args.quick)
        dep.start_services()
        dep.wait_workers()
        if "load1" not in args.skip:
            log(f"[{name}] load 1: {args.viewers} viewers, {args.fits} fits × {args.epochs} epochs")
            result["load1"] = run_load(dep, args, "load1", faults=False)
            log(f"[{name}] load 1: {summary_line(result['load1'])}")
        if "load2" not in args.skip:
            log(f"[{name}] load 2: the same with faults")
            dep.wait_workers()
            result["load2"] = run_load(dep, args, "load2", faults=True)
            log(f"[{name}] load 2: {summary_line(result['load2'])}")
        if "runs" not in args.skip:
            log(f"[{name}] a year of runs: {args.runs} runs, the Runs page in Chromium")
            result["runs_page"] = runs_page(dep, args.runs, 5.0 if args.quick else 15.0)
            log(f"[{name}] runs page: {result['runs_page']}")
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        log(f"[{name}] failed: {result['error']}")
        for proc in stack.procs:
            log(f"--- {proc.name} log ---\n{stack.log_tail(proc.name)}")
    finally:
        stack.close()
    return result


def summary_line(r: dict) -> str:
    p = r["polls"]
    fmt = (lambda v: "-" if v is None else f"{v:.0f}")
    return (f"polls p50/p95/p99 {fmt(p['p50_ms'])}/{fmt(p['p95_ms'])}/{fmt(p['p99_ms'])} ms "
            f"({p['polls']} polls, errors {p['errors'] or 0}); fits done {r['done']}/{len(r['runs'])}; "
            f"epochs {r['epochs_recorded']}/{r['epochs_expected']} (lost {r['lost']}, "
            f"duplicated {r['duplicated']}); peak MB {r['memory_peak_mb']}")


def _ms(v) -> str:
    return "–" if v is None else f"{v:.0f}"


def markdown(results: dict) -> str:
    """The results as markdown tables: the loads, the runs they left, the Runs page."""
    m = results.get("machine", {})
    lines = [f"Machine: {m.get('cores')} cores, load average at the start "
             f"{', '.join(f'{v:.1f}' for v in m.get('load_avg', []))}"
             + (" (quick mode)" if results.get("quick") else ""), ""]
    loads = [(r["config"], key, r[key]) for r in results["results"]
             for key in ("load1", "load2") if key in r]
    if loads:
        lines += ["| config | load | viewers × fits × epochs | polls | p50 / p95 / p99 ms (all) "
                  "| live polls p50 / p95 / p99 ms | opening a run p50 / p95 ms | errors "
                  "| fits done | epochs recorded / expected | lost | duplicated "
                  "| final, explained | peak RSS MB (server / workers / redis) |",
                  "|" + "---|" * 14]
        for config, key, r in loads:
            p, mem = r["polls"], r["memory_peak_mb"]
            lines.append(
                f"| {config} | {key} | {r['viewers']} × {r['fits']} × {r['epochs_per_fit']} "
                f"| {p['polls']} | {_ms(p['p50_ms'])} / {_ms(p['p95_ms'])} / {_ms(p['p99_ms'])} "
                f"| {_ms(p.get('live_p50_ms'))} / {_ms(p.get('live_p95_ms'))} / "
                f"{_ms(p.get('live_p99_ms'))} | {_ms(p.get('first_poll_p50_ms'))} / "
                f"{_ms(p.get('first_poll_p95_ms'))} | {sum((p['errors'] or {}).values())} "
                f"| {r['done']}/{len(r['runs'])} | {r['epochs_recorded']}/{r['epochs_expected']} "
                f"| {r['lost']} | {r['duplicated']} "
                f"| {r['final'] - r['unexplained']}/{len(r['runs'])} "
                f"| {mem.get('server', 0):.0f} / {mem.get('workers', 0):.0f} / "
                f"{mem.get('redis', 0):.0f} |")
        lines += ["", "| config | load | run | status | epochs | what happened |",
                  "|---|---|---|---|---|---|"]
        for config, key, r in loads:
            for rid, info in r["runs"].items():
                lines.append(f"| {config} | {key} | {info['name']} ({rid}) | {info['status']} "
                             f"| {info['epochs']} | {info['error'] or ''} |")
        faults = [(config, key, f) for config, key, r in loads for f in r.get("faults", [])]
        if faults:
            lines += ["", "| config | fault | at s | detail |", "|---|---|---|---|"]
            for config, key, f in faults:
                detail = ", ".join(f"{k} {v}" for k, v in f.items() if k not in ("fault", "at_s"))
                lines.append(f"| {config} | {f['fault']} | {f['at_s']} | {detail} |")
        conts = [(config, rid, c) for config, key, r in loads
                 for rid, c in (r.get("continue") or {}).items()]
        if conts:
            lines += ["", "| config | interrupted run | continued | how | from → to epoch "
                      "| recomputed epochs equal the stored ones |", "|---|---|---|---|---|---|"]
            for config, rid, c in conts:
                if not c.get("continued"):
                    lines.append(f"| {config} | {rid} | no | {c.get('why')} | | |")
                    continue
                agree = (f"{c['agree']} ({c['epochs_compared']} epochs, max rel. diff "
                         f"{c['max_rel_diff']:.1e})") if "agree" in c else \
                    f"stored epochs changed: {c.get('stored_epochs_changed')}"
                lines.append(f"| {config} | {rid} | yes{' , finished' if c.get('finished') else ''} "
                             f"| {c['how']} | {c['from_epoch']} → {c.get('to_epoch', c.get('epochs'))} "
                             f"| {agree} |")
    pages = [(r["config"], r["runs_page"]) for r in results["results"] if "runs_page" in r]
    if pages:
        lines += ["", "| config | runs in the store | made in s | page HTML s | table shown s "
                  "| first table answer: server ms, KB | next page s | search s "
                  "| polls watched | poll size median / max KB |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for config, rp in pages:
            server = rp.get("first_table_server_ms")
            lines.append(f"| {config} | {rp['runs']:,} | {rp['make_seconds']} "
                         f"| {rp.get('html_s', '–')} | {rp['table_s']} "
                         f"| {_ms(server)}, {rp.get('first_table_kb', '–')} "
                         f"| {rp['next_page_s']} | {rp['search_s']} | {rp['polls']} "
                         f"| {rp['poll_median_kb']} / {rp['poll_max_kb']} |")
    for r in results["results"]:
        if "error" in r:
            lines.append(f"\n**{r['config']} failed**: {r['error']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=("both", "redis", "embedded"), default="both")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 8 viewers, 4 fits of 20 epochs, 1000 runs")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the results as JSON to FILE")
    parser.add_argument("--report", metavar="FILE", default=None,
                        help="print the tables of a JSON file written by --json, and exit")
    parser.add_argument("--viewers", type=int, default=None)
    parser.add_argument("--fits", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="bound on each load (default 20, quick 4)")
    parser.add_argument("--skip", default="", help="comma-separated: load1, load2, runs")
    args = parser.parse_args(argv)
    if args.report:
        print(markdown(json.loads(Path(args.report).read_text())))
        return 0
    q = args.quick
    args.viewers = args.viewers or (8 if q else 40)
    args.fits = args.fits or (4 if q else 8)
    args.epochs = args.epochs or (20 if q else 300)
    args.runs = args.runs if args.runs is not None else (1000 if q else 10000)
    args.max_minutes = args.max_minutes or (4.0 if q else 20.0)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    def on_term(signum, frame):   # stop like Ctrl-C: everything is cleaned up
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    configs = ("redis", "embedded") if args.config == "both" else (args.config,)
    results = {"machine": {"cores": os.cpu_count(), "load_avg": os.getloadavg()},
               "quick": q, "results": []}
    for name in configs:
        results["results"].append(run_config(name, args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(markdown(results))
    return 0 if all("error" not in r for r in results["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
