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
    v1 = [SlotRecord("net/api", 0, 1, "api:1.0", "h1"), SlotRecord("net/api", 1, 1, "api:1.0", "h1")]
    v2 = [SlotRecord("net/api", 0, 2, "api:2.0", "h1"), SlotRecord("net/api", 1, 2, "api:2.0", "h1")]
    with Journal(tmp_path / "state.db") as j:
        dep = j.begin_deployment("p", "up")
        j.record_slot(dep, v1[0], "create")
        assert j.good_states("p", "net/api") == []
        j.finish_deployment(dep, "succeeded", good=v1)
        failed = j.begin_deployment("p", "upgrade", {"paths": ["net"]})
        j.finish_deployment(failed, "failed", "boom", good=v2)  # a failed run is never good
        upgraded = j.begin_deployment("p", "upgrade")
        j.finish_deployment(upgraded, "succeeded", good=v2)
        assert j.good_states("p", "net/api") == [(upgraded, v2), (dep, v1)]
        assert [d.status for d in j.deployments("p")] == ["succeeded", "failed", "succeeded"]
        assert j.deployments("p")[1].request == {"paths": ["net"]}
    conn = sqlite3.connect(tmp_path / "state.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failing_write_leaves_no_half_record(tmp_path):
    with Journal(tmp_path / "state.db") as j:
        dep = j.begin_deployment("p", "up")
        bad = SlotRecord("net/api", 0, 1, "api:1.0", None)  # NOT NULL violated on the second row
        with pytest.raises(sqlite3.IntegrityError):
            j.finish_deployment(dep, "succeeded", good=[SlotRecord("net/api", 1, 1, "api:1.0", "h"), bad])
        assert j.good_states("p", "net/api") == []
        assert j.deployments("p")[0].status == "running"


def test_steps_are_journaled_before_and_after_and_unfinished_runs_are_found(tmp_path):
    with Journal(tmp_path / "state.db") as j:
        dep = j.begin_deployment("p", "upgrade", {"paths": []})
        first = j.step_started(dep, "start", "net/api/0")
        j.step_finished(dep, first, True)
        second = j.step_started(dep, "gate", "net-api-0-g2")
        assert [(s.seq, s.kind, s.status) for s in j.steps(dep)] == [(1, "start", "done"), (2, "gate", "started")]
        assert j.unfinished("p").id == dep
        j.step_finished(dep, second, False, "unhealthy")
        j.set_deployment(dep, phase="rollback")
        assert j.unfinished("p").phase == "rollback"
        j.finish_deployment(dep, "rolled-back")
        assert j.unfinished("p") is None
