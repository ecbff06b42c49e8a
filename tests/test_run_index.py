"""The run index: summaries kept in the same transactions as the run records, in
both backends, so that a page of thousands of runs never reads their records."""
import pytest

from flowdash.records import UNREADABLE
from flowdash.store import CANCELLED, DONE, FAILED, RUNNING, open_store
from flowdash.store.base import SUMMARY_BUCKETS, dumps
from tests.test_store import _delete_raw, _write_raw, location, redis_base, store  # noqa: F401


def fit_run(store, name, dataset="d1", model="m1", status=None):
    rid = store.create_run("fit", name, {"dataset": dataset, "init_model": model},
                           {"dataset": dataset, "model": model})
    if status == RUNNING:
        store.start_run(rid, 1, 0.0)
    elif status is not None:
        store.finish_run(rid, status)
    return rid


def gen_run(store, name, dataset):
    return store.create_run("generation", name, {"dataset_name": dataset, "model": "truth"},
                            {"dataset": dataset, "model": "truth"})


def test_summaries_follow_every_change_in_the_same_transaction(store):
    a = fit_run(store, "alpha")
    b = gen_run(store, "make d2", "d2")
    assert [(s["id"], s["kind"], s["name"], s["status"], s["dataset"], s["model"])
            for s in store.run_summaries()] == [(b, "generation", "make d2", "queued", "d2",
                                                 "truth"),
                                                (a, "fit", "alpha", "queued", "d1", "m1")]
    store.start_run(a, 1, 0.0)
    store.request_cancel(b)                              # queued -> cancelled at once
    assert {s["id"]: s["status"] for s in store.run_summaries()} == {a: RUNNING, b: CANCELLED}
    version = store.index_version()
    store.update_run(a, progress=0.5, message="epoch 3")     # progress: the index stays
    assert store.index_version() == version
    store.update_run(a, name="renamed")
    store.finish_run(a, FAILED)
    assert store.index_version() != version
    assert [(s["name"], s["status"]) for s in store.run_summaries()] == [
        ("make d2", CANCELLED), ("renamed", FAILED)]
    store.delete_run(b)
    assert [s["id"] for s in store.run_summaries()] == [a] == store.run_ids()


def test_find_runs_searches_filters_sorts_and_pages(store):
    ids = {}
    for k, (name, ds, status) in enumerate([("Wide fit", "d1", DONE), ("narrow", "d2", DONE),
                                            ("wide 2", "d2", FAILED), ("other", "d1", None)]):
        ids[name] = fit_run(store, name, dataset=ds, status=status)
    ids["gen"] = gen_run(store, "gen d3", "d3")
    total, page = store.find_runs()
    assert total == 5 and [s["name"] for s in page] == ["gen d3", "other", "wide 2", "narrow",
                                                        "Wide fit"]
    assert [s["name"] for s in store.find_runs(search="WIDE")[1]] == ["wide 2", "Wide fit"]
    assert store.find_runs(search=ids["narrow"][:5])[1][0]["name"] == "narrow"   # id prefix
    assert [s["name"] for s in store.find_runs(kind="fit", dataset="d2")[1]] == ["wide 2",
                                                                                 "narrow"]
    assert store.find_runs(status=[DONE, FAILED])[0] == 3
    assert store.find_runs(status="queued", kind=["generation"])[1][0]["id"] == ids["gen"]
    assert [s["name"] for s in store.find_runs(order="name")[1]] == [
        "gen d3", "narrow", "other", "wide 2", "Wide fit"]
    assert [s["name"] for s in store.find_runs(order="oldest", offset=1, limit=2)[1]] == [
        "narrow", "wide 2"]
    total, page = store.find_runs(order="name_desc", offset=4, limit=10)
    assert total == 5 and [s["name"] for s in page] == ["gen d3"]
    assert store.find_runs(search="x" * 100_000) == (0, [])        # bounded, no error
    assert store.run_datasets() == ["d1", "d2", "d3"]
    with pytest.raises(ValueError, match="order must be one of newest, oldest"):
        store.find_runs(order="random")


def test_a_page_of_runs_reads_no_run_record(store):
    """The index answers alone: every record may be unreadable, the list still works;
    the records of the page shown say what they are."""
    runs = [fit_run(store, f"run {k}", status=DONE) for k in range(30)]
    for rid in runs:
        _write_raw(store, f"run:{rid}", b"\x00garbage{")
    total, page = store.find_runs(search="run 2", limit=5)
    assert total == 11 and [s["name"] for s in page] == ["run 29", "run 28", "run 27",
                                                          "run 26", "run 25"]
    shown = store.get_runs([s["id"] for s in page])
    assert {r["status"] for r in shown} == {UNREADABLE}
    assert store.n_epochs_many([s["id"] for s in page] + ["nonsense"]) == {
        s["id"]: 0 for s in page}


def test_another_process_sees_the_changes(location):
    """Each process keeps the decoded index and re-reads only the buckets that
    changed: a reader never shows a stale list."""
    writer, reader = open_store(location), open_store(location)
    a = fit_run(writer, "a")
    assert [s["name"] for s in reader.find_runs()[1]] == ["a"]
    for k in range(3 * SUMMARY_BUCKETS):
        fit_run(writer, f"many {k}")
    writer.finish_run(a, DONE)
    assert reader.find_runs()[0] == 3 * SUMMARY_BUCKETS + 1
    assert reader.find_runs(status=DONE)[1][0]["id"] == a
    writer.delete_run(a)
    assert reader.find_runs(status=DONE) == (0, [])
    writer.close()
    reader.close()


@pytest.mark.parametrize("damage", [None, b"\x00garbage{", b"[1, 2]"])
def test_the_index_is_rebuilt_from_the_records(store, damage):
    """A store written before the index (a list of ids), or a damaged index, gets
    its index back from the run records, in creation order."""
    a = fit_run(store, "first", status=DONE)
    b = gen_run(store, "second", "d9")
    _write_raw(store, f"run:{b}", b"\x00garbage{")             # one unreadable record
    if damage is None:                                         # an older store
        for key in ["runs:sumver", "runs:seq"] + [f"runs:sum:{k}"
                                                  for k in range(SUMMARY_BUCKETS)]:
            _delete_raw(store, key)
        _write_raw(store, "runs:index", dumps([a, b]))
    else:
        _write_raw(store, "runs:sumver", damage)
    if damage is None:
        assert store.run_ids() == [b, a]
    else:   # an unreadable record has no time: its place is unknown
        assert sorted(store.run_ids()) == sorted([a, b])
    by_id = {s["id"]: s for s in store.run_summaries()}
    assert by_id[a]["status"] == DONE and by_id[b]["status"] == UNREADABLE
    c = fit_run(store, "third")
    assert store.run_ids()[0] == c and len(store.run_ids()) == 3
    assert store.find_runs(search="first")[1][0]["id"] == a


def test_a_damaged_bucket_is_rebuilt(store):
    a = fit_run(store, "a")
    fit_run(store, "b")
    from flowdash.store.base import summary_bucket
    _write_raw(store, f"runs:sum:{summary_bucket(a)}", b"\x00garbage{")
    _write_raw(store, "runs:sumver", dumps([f"v{k}" for k in range(SUMMARY_BUCKETS)]))
    assert sorted(s["name"] for s in store.run_summaries()) == ["a", "b"]
    store.finish_run(a, DONE)
    assert store.find_runs(status=DONE)[1][0]["id"] == a
