"""The state journal on real SQLite."""

import sqlite3
import threading

import pytest

from hitless.state.journal import Journal, SlotRecord


def test_generations_are_monotonic_and_never_reused(tmp_path):
    with Journal(tmp_path / "state.db") as j:
        assert [j.allocate_generation("p", "net/api", 0) for _ in range(3)] == [1, 2, 3]
        assert j.allocate_generation("p", "net/api", 1) == 1
        # An instance seen with a higher generation (say the database was lost) is never reused.
        assert j.allocate_generation("p", "net/api", 0, observed_max=10) == 11
        assert j.allocate_generation("p", "net/api", 0, observed_max=2) == 12
    with Journal(tmp_path / "state.db") as j:
        assert j.last_generation("p", "net/api", 0) == 12


def test_concurrent_allocations_never_hand_out_the_same_generation(tmp_path):
    Journal(tmp_path / "state.db").close()
    got: list[int] = []

    def worker():
        with Journal(tmp_path / "state.db") as j:
            for _ in range(25):
                got.append(j.allocate_generation("p", "s", 0))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 101))


def test_wal_mode_and_known_good_written_with_the_deployment(tmp_path):
    with Journal(tmp_path / "state.db") as j:
        dep = j.begin_deployment("p", "up")
        j.record_slot(dep, SlotRecord("net/api", 0, 1, "api:1.0", "h1"), "create")
        assert j.known_good("p") == []
        j.finish_deployment(dep, "succeeded", good=[SlotRecord("net/api", 0, 1, "api:1.0", "h1")])
        failed = j.begin_deployment("p", "up")
        j.finish_deployment(failed, "failed", "boom")
        assert j.known_good("p") == [SlotRecord("net/api", 0, 1, "api:1.0", "h1")]
        assert [d.status for d in j.deployments("p")] == ["failed", "succeeded"]
    conn = sqlite3.connect(tmp_path / "state.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failing_write_leaves_no_half_record(tmp_path):
    with Journal(tmp_path / "state.db") as j:
        dep = j.begin_deployment("p", "up")
        bad = SlotRecord("net/api", 0, 1, "api:1.0", None)  # NOT NULL violated on the second row
        with pytest.raises(sqlite3.IntegrityError):
            j.finish_deployment(dep, "succeeded", good=[SlotRecord("net/api", 1, 1, "api:1.0", "h"), bad])
        assert j.known_good("p") == []
        assert j.deployments("p")[0].status == "running"
