"""Checkpoints: round trip, refusing code-running pickles, corrupt files, rotation, fallback, lock."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from histgan.train.checkpoint import (RunLock, checkpoint_path, list_checkpoints, load_checkpoint, load_latest_good,
                                rotate_checkpoints, save_checkpoint)
from histgan.train.run_files import newest_step
from histgan.errors import HistganError


class _Evil:
    """Unpickling this would create a folder (stands in for any code an attacker could run)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_round_trip(tmp_path):
    state = {"step": 3, "config": {"variant": "histgan_bi", "bandwidth": None, "amp": "auto"},
             "models": {"G": {"w": torch.arange(4.0)}}, "rng": [3, [1, 2, 3], None], "pool": torch.zeros(0)}
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["step"] == 3 and back["config"] == state["config"] and back["rng"] == state["rng"]
    assert torch.equal(back["models"]["G"]["w"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_code_running_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"step": 1, "payload": _Evil(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(HistganError, match=r"evil\.pt.*refused"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    # a raw (non-zip) pickle of the same is refused too
    with open(tmp_path / "raw.pt", "wb") as fh:
        pickle.dump(_Evil(str(marker)), fh)
    with pytest.raises(HistganError, match=r"raw\.pt"):
        load_checkpoint(tmp_path / "raw.pt")
    assert not marker.exists()


def test_truncated_and_corrupt_files_name_the_file(tmp_path):
    save_checkpoint(tmp_path / "good.pt", {"w": torch.randn(100, 100)})
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(HistganError, match=r"cut\.pt.*(truncated|corrupt)"):
        load_checkpoint(tmp_path / "cut.pt")
    rng = np.random.default_rng(0)
    for i in range(50):  # random bytes fail in many ways inside the unpickler; every one is reported
        (tmp_path / "noise.pt").write_bytes(rng.bytes(64 + i) if i % 2 else b"\x80\x02" + rng.bytes(64 + i))
        with pytest.raises(HistganError, match=r"noise\.pt"):
            load_checkpoint(tmp_path / "noise.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(HistganError, match=r"empty\.pt"):
        load_checkpoint(tmp_path / "empty.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(HistganError, match="dict"):
        load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_list_and_rotate(tmp_path):
    for step in (12, 3, 100, 1_000_000):
        save_checkpoint(checkpoint_path(tmp_path, step), {"step": step})
    (tmp_path / "checkpoints" / "latest.pt").write_bytes(b"x")
    assert [load_checkpoint(p)["step"] for p in list_checkpoints(tmp_path)] == [3, 12, 100, 1_000_000]
    assert newest_step(tmp_path) == 1_000_000 and newest_step(tmp_path / "nothing") is None
    rotate_checkpoints(tmp_path, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000100.pt", "step_1000000.pt"]
    assert (tmp_path / "checkpoints" / "latest.pt").exists()
    assert list_checkpoints(tmp_path / "nothing") == []


def test_latest_good_falls_back_with_a_warning(tmp_path):
    assert load_latest_good(tmp_path) is None
    for step in (4, 8):
        save_checkpoint(checkpoint_path(tmp_path, step), {"step": step})
    (tmp_path / "checkpoints" / "latest.pt").write_bytes(b"garbage")
    checkpoint_path(tmp_path, 8).write_bytes(b"")  # newest numbered one broken too
    with pytest.warns(RuntimeWarning) as caught:
        state, path = load_latest_good(tmp_path)
    assert ["latest.pt" in str(w.message) for w in caught] == [True, False]
    assert state["step"] == 4 and path.name == "step_000004.pt"
    checkpoint_path(tmp_path, 4).write_bytes(b"")
    with pytest.warns(RuntimeWarning), pytest.raises(HistganError, match="no readable checkpoint"):
        load_latest_good(tmp_path)


def test_lock_refuses_a_live_owner_and_takes_over_a_stale_one(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "train.lock").write_text(f"{live.pid}\n")
        with pytest.raises(HistganError, match=f"in use by training process {live.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        live.kill()
        live.wait()
    with pytest.warns(RuntimeWarning, match="stale"):  # the process is gone now
        with RunLock(tmp_path) as lock:
            assert (tmp_path / "train.lock").read_text().strip() == str(os.getpid()) and lock.held
            with pytest.raises(HistganError, match="in use"):  # a second training, same process
                RunLock(tmp_path).acquire()
    assert not (tmp_path / "train.lock").exists()


def test_a_flipped_bit_is_caught_by_the_checksum(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"w": torch.zeros(10_000)})
    data = bytearray((tmp_path / "c.pt").read_bytes())
    assert load_checkpoint(tmp_path / "c.pt")["w"].abs().sum() == 0
    data[len(data) // 2] ^= 0x10  # inside the tensor bytes: torch.load alone would read a changed value
    (tmp_path / "c.pt").write_bytes(bytes(data))
    with pytest.raises(HistganError, match=r"c\.pt is corrupt"):
        load_checkpoint(tmp_path / "c.pt")
