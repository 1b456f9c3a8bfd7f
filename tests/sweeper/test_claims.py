"""Cell claims without Ray: one holder per (cell, seed), dead holders taken over, heartbeats."""
import json
import subprocess
import sys
import threading
import time

from sweeper.claims import Claims, Holder


def holder(name: str, pid: int = 1) -> Holder:
    """A driver on another machine (its own host name: liveness by heartbeat only)."""
    return Holder(id=name, host=f"host-{name}", pid=pid, started_at=time.time())


def test_a_claimed_cell_is_refused_to_others_until_released(tmp_path):
    a, b = Claims(str(tmp_path), holder("a")), Claims(str(tmp_path), holder("b"))
    assert a.try_claim("c1-s0") is None and a.try_claim("c1-s0") is None  # ours, and again ours
    refused = b.try_claim("c1-s0")
    assert refused is not None and refused.id == "a" and "host host-a, PID 1, started" in refused.describe()
    assert b.try_claim("c2-s0") is None
    assert set(a.holders()) == {"c2-s0"} and set(b.holders()) == {"c1-s0"}
    a.release("c1-s0")
    assert b.try_claim("c1-s0") is None
    assert sorted(p.name for p in (tmp_path / "claims").iterdir()) == ["c1-s0@b.json", "c2-s0@b.json"]


def test_a_stale_heartbeat_or_a_dead_local_process_frees_the_cell(tmp_path):
    old = Claims(str(tmp_path), holder("old"), stale_after_s=0.5)
    assert old.try_claim("k") is None
    fresh = Claims(str(tmp_path), holder("new"), stale_after_s=0.5)
    assert fresh.try_claim("k") is not None
    time.sleep(0.7)
    assert fresh.try_claim("k") is None  # taken over: the old holder's file is gone
    assert [p.name for p in (tmp_path / "claims").iterdir()] == ["k@new.json"]

    # A holder on this host whose process is gone is dead at once (a kill -9 of its driver).
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = Holder(id="dead", host=Holder.this_process().host, pid=int(gone.stdout), started_at=time.time())
    Claims(str(tmp_path / "s2"), dead).try_claim("k")
    assert Claims(str(tmp_path / "s2"), holder("next")).try_claim("k") is not None  # elsewhere: must wait
    assert Claims(str(tmp_path / "s2"), Holder.this_process()).try_claim("k") is None  # same host: free


def test_the_heartbeat_keeps_a_long_claim_alive_and_exit_releases_everything(tmp_path):
    with Claims(str(tmp_path), holder("a"), stale_after_s=0.6, heartbeat_s=0.1) as a:
        assert a.try_claim("k") is None
        time.sleep(1.0)  # longer than stale_after_s: only the heartbeat keeps it
        assert Claims(str(tmp_path), holder("b"), stale_after_s=0.6).try_claim("k") is not None
        beat = json.loads((tmp_path / "claims" / "k@a.json").read_text())["heartbeat"]
        assert time.time() - beat < 0.5
    assert list((tmp_path / "claims").iterdir()) == []


def test_racing_contenders_never_both_win(tmp_path):
    for round_ in range(20):
        contenders = [Claims(str(tmp_path), holder(f"r{round_}-{i}")) for i in range(4)]
        results, barrier = {}, threading.Barrier(len(contenders))

        def go(c):
            barrier.wait()
            results[c.holder.id] = c.try_claim(f"cell{round_}")

        threads = [threading.Thread(target=go, args=(c,)) for c in contenders]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [name for name, refused in results.items() if refused is None]
        assert len(winners) <= 1, winners
