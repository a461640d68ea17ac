"""Faults and bad inputs across modules: one suite, listed row by row in README "Reliability".

Every case goes through the public surface: the CLI (``histgan.cli.main``, the function behind
``python -m histgan``; a few cases also as a real subprocess) or :func:`histgan.train.loop.fit`. Warnings
are written to stderr as the interpreter would, so "one line on stderr" means one line.

Sizes are tiny: one 32² dataset (4 + 4 training images) and one 8-step ``quick`` run are shared by
the whole module; runs that a test changes are copies of it.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from histgan.train.checkpoint import checkpoint_path, load_checkpoint, load_latest_good
from histgan.cli import main
from histgan.config import make_config
from histgan.errors import HistganError
from histgan.data.synthetic import write_dataset
from histgan.train.loop import fit

ROOT = Path(__file__).resolve().parents[1]
STEPS = 8  # the shared run: quick preset (checkpoint_every 4 → step_000004.pt, step_000008.pt, latest.pt)


# ---- shared data and run -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("faults") / "data", size=32, n_train=4, n_test=2, seed=0,
                         progress=False)


def _config(data: Path, run: Path, **overrides):
    return make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(run), device="cpu",
                       **{"steps": STEPS, **overrides})


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    """An uninterrupted 8-step run: the reference every resumed run must equal bit for bit."""
    return fit(_config(data, tmp_path_factory.mktemp("faults") / "run"), progress=False)


@pytest.fixture
def run_copy(run, data, tmp_path) -> Path:
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture
def data_copy(data, tmp_path) -> Path:
    shutil.copytree(data, tmp_path / "data")
    return tmp_path / "data"


def _assert_same_weights(run_a: Path, run_b: Path) -> None:
    a, b = (load_checkpoint(r / "checkpoints" / "latest.pt") for r in (run_a, run_b))
    assert a["step"] == b["step"] == STEPS
    for name in ("G", "F", "D_x", "D_y"):
        for key, tensor in a["models"][name].items():
            assert torch.equal(tensor, b["models"][name][key]), f"{name}.{key} differs"
    for name in ("G", "D"):  # Adam moments too: a resumed run must continue exactly, not just end close
        for pid, st in a["optimisers"][name]["state"].items():
            for key, tensor in st.items():
                assert torch.equal(tensor, b["optimisers"][name]["state"][pid][key]), f"opt {name}.{pid}.{key}"


# ---- running the CLI ------------------------------------------------------------------------------
def _cli(argv: list[str], capsys) -> tuple[int, str]:
    """``main(argv)`` in this process; returns (exit code, stderr with warnings printed as Python would)."""
    capsys.readouterr()

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
    return code, capsys.readouterr().err


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("histgan: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)


def _train_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--variant", "histgan_bi", "--data", str(data), "--out", str(out), "--preset", "quick",
            "--steps", "1", "--device", "cpu", "--no-progress", *extra]


def _subprocess_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "histgan", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


# ---- bad files ------------------------------------------------------------------------------------
def _bomb_png(path: Path, side: int = 20_000) -> None:
    """A 60-byte PNG whose header claims side × side pixels (4·10⁸ > 2 × Pillow's limit)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _make_bad(kind: str, path: Path) -> None:
    """Turn the image file ``path`` into a bad input of ``kind`` (same name)."""
    good = path.read_bytes()
    if kind == "corrupt":
        path.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(len(good))))
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "zero_byte":
        path.write_bytes(b"")
    elif kind == "bomb":
        _bomb_png(path)
    else:
        raise AssertionError(kind)


BAD_FILES = ["corrupt", "truncated", "zero_byte", "bomb"]


@pytest.mark.parametrize("kind", BAD_FILES)
def test_train_bad_image_file(kind, data_copy, tmp_path, capsys):
    bad = data_copy / "trainA" / "x0002.png"
    _make_bad(kind, bad)
    code, err = _cli(_train_argv(data_copy, tmp_path / "out"), capsys)
    _assert_one_line_error(code, err, str(bad))


def test_train_bad_mask_size(data_copy, tmp_path, capsys):
    mask = data_copy / "trainB_mask" / "y0001.png"
    Image.new("L", (16, 16), 255).save(mask)
    code, err = _cli(_train_argv(data_copy, tmp_path / "out"), capsys)
    _assert_one_line_error(code, err, str(mask), "16x16")


@pytest.mark.parametrize("kind", ["empty_folder", "missing_folder"])
def test_train_bad_folder(kind, data_copy, tmp_path, capsys):
    if kind == "empty_folder":
        for p in (data_copy / "trainA").iterdir():
            p.unlink()
    else:
        shutil.rmtree(data_copy / "trainB")
    code, err = _cli(_train_argv(data_copy, tmp_path / "out"), capsys)
    _assert_one_line_error(code, err, str(data_copy / ("trainA" if kind == "empty_folder" else "trainB")))


def _as_mode(src: Path, dst: Path, mode: str) -> Path:
    """Re-save the RGB PNG ``src`` as ``mode``: L (grey), RGBA, I;16 (16-bit grey) or P (palette)."""
    rgb = Image.open(src).convert("RGB")
    if mode == "I;16":
        im = Image.fromarray((np.asarray(rgb.convert("L"), dtype=np.uint16) * 257))
    elif mode == "RGBA":
        im = rgb.convert("RGBA")
        im.putalpha(200)
    else:
        im = rgb.convert(mode)
    im.save(dst)
    return dst


MODES = ["L", "RGBA", "I;16", "P"]


def test_train_accepts_grey_rgba_16bit_palette(data_copy, tmp_path, capsys):
    for folder, prefix in (("trainA", "x"), ("trainB", "y")):
        for i, mode in enumerate(MODES):
            path = data_copy / folder / f"{prefix}{i:04d}.png"
            _as_mode(path, path, mode)
    modes = {Image.open(p).mode for p in (data_copy / "trainA").iterdir()}
    assert {"L", "RGBA", "P"} <= modes and modes & {"I", "I;16"}, modes
    code, err = _cli(_train_argv(data_copy, tmp_path / "out"), capsys)
    assert code == 0, err
    assert load_checkpoint(tmp_path / "out" / "checkpoints" / "latest.pt")["step"] == 1


def _translate_argv(run: Path, data: Path, out: Path, *extra: str, input: Path | None = None,
                    reference: Path | None = None) -> list[str]:
    return ["translate", "--checkpoint", str(run), "--input", str(input or data / "testA" / "x0000.png"),
            "--reference", str(reference or data / "testB" / "y0000.png"), "--out", str(out), *extra]


@pytest.mark.parametrize("kind", BAD_FILES)
def test_translate_bad_input_file(kind, run, data, tmp_path, capsys):
    bad = shutil.copy(data / "testA" / "x0000.png", tmp_path / "in.png")
    _make_bad(kind, Path(bad))
    code, err = _cli(_translate_argv(run, data, tmp_path / "o.png", input=Path(bad)), capsys)
    _assert_one_line_error(code, err, str(bad))
    assert not (tmp_path / "o.png").exists()


def test_translate_missing_input(run, data, tmp_path, capsys):
    code, err = _cli(_translate_argv(run, data, tmp_path / "o.png", input=tmp_path / "nothing.png"), capsys)
    _assert_one_line_error(code, err, "nothing.png")


def test_translate_bad_reference_mask_size(run, data, tmp_path, capsys):
    mask = tmp_path / "mask.png"
    Image.new("L", (16, 16), 255).save(mask)
    code, err = _cli(_translate_argv(run, data, tmp_path / "o.png", "--reference-mask", str(mask)), capsys)
    _assert_one_line_error(code, err, str(mask))


@pytest.mark.parametrize("mode", MODES)
def test_translate_accepts_mode(mode, run, data, tmp_path, capsys):
    x = _as_mode(data / "testA" / "x0000.png", tmp_path / "in.png", mode)
    ref = _as_mode(data / "testB" / "y0000.png", tmp_path / "ref.png", mode)
    code, err = _cli(_translate_argv(run, data, tmp_path / "o.png", "--reference-mask", "none", input=x,
                                     reference=ref), capsys)  # no mask file, no masker: the whole reference
    assert code == 0, err
    out = Image.open(tmp_path / "o.png")
    assert out.size == (32, 32) and out.mode == "RGB"


# ---- bad parameters -------------------------------------------------------------------------------
# bins 0, bandwidth -1, an unknown variant and --device cuda are tried in tests/test_train.py.
TRAIN_PARAMS = {
    "bins_negative": (["--bins", "-3"], "bins"),
    "bandwidth_0": (["--bandwidth", "0"], "bandwidth"),
    "bandwidth_nan": (["--bandwidth", "nan"], "bandwidth"),
    "image_size_not_divisible": (["--image-size", "30"], "divisible"),
}


@pytest.mark.parametrize("case", list(TRAIN_PARAMS))
def test_train_bad_parameter(case, data, tmp_path, capsys):
    flags, needle = TRAIN_PARAMS[case]
    code, err = _cli(_train_argv(data, tmp_path / "out", *flags), capsys)
    _assert_one_line_error(code, err, needle)
    assert not (tmp_path / "out" / "checkpoints").exists()


TRANSLATE_PARAMS = {
    "size_not_divisible": (["--size", "30"], "divisible"),
    "device_cuda_without_gpu": (["--device", "cuda"], "cuda"),
}


@pytest.mark.parametrize("case", list(TRANSLATE_PARAMS))
def test_translate_bad_parameter(case, run, data, tmp_path, capsys):
    flags, needle = TRANSLATE_PARAMS[case]
    if case == "device_cuda_without_gpu" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, err = _cli(_translate_argv(run, data, tmp_path / "o.png", *flags), capsys)
    _assert_one_line_error(code, err, needle)


@pytest.mark.slow
def test_python_m_histgan_one_line_no_traceback(run, data, tmp_path):
    """The same errors through a real ``python -m histgan`` process (interpreter, runpy, SystemExit)."""
    bad = Path(shutil.copy(data / "testA" / "x0000.png", tmp_path / "in.png"))
    _make_bad("truncated", bad)
    for args, needle in ((_train_argv(data, tmp_path / "out", "--bins", "0"), "bins"),
                         (_translate_argv(run, data, tmp_path / "o.png", input=bad), str(bad))):
        proc = _subprocess_cli(*args)
        _assert_one_line_error(proc.returncode, proc.stderr, needle)


# ---- checkpoints ----------------------------------------------------------------------------------
def _bit_flip(path: Path) -> None:
    """Flip one bit in the middle of the file (inside a stored tensor, not in the zip directory)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["truncated", "bit_flip"])
def test_damaged_checkpoint_names_the_file(kind, run_copy, data, tmp_path, capsys):
    latest = run_copy / "checkpoints" / "latest.pt"
    if kind == "truncated":
        latest.write_bytes(latest.read_bytes()[:-1000])
    else:
        _bit_flip(latest)
    with pytest.raises(HistganError, match=re.escape(str(latest))):
        load_checkpoint(latest)
    code, err = _cli(_translate_argv(latest, data, tmp_path / "o.png"), capsys)
    _assert_one_line_error(code, err, str(latest))


def test_resume_falls_back_to_newest_good_checkpoint(run, run_copy, data):
    """latest.pt bit-flipped and step_000008.pt truncated: resume warns about both, continues from step 4,
    and ends bit-identical to the uninterrupted run."""
    _bit_flip(run_copy / "checkpoints" / "latest.pt")
    step8 = checkpoint_path(run_copy, 8)
    step8.write_bytes(step8.read_bytes()[: step8.stat().st_size // 3])
    with pytest.warns(RuntimeWarning) as caught:
        fit(_config(data, run_copy), resume=True, progress=False)
    text = " ".join(str(w.message) for w in caught)
    assert "latest.pt" in text and "step_000008.pt" in text
    assert json.loads((run_copy / "environment.json").read_text())["started_at_step"] == 4
    _assert_same_weights(run, run_copy)


def test_resume_with_no_readable_checkpoint_refuses(run_copy, data, capsys):
    for p in (run_copy / "checkpoints").iterdir():
        p.write_bytes(p.read_bytes()[:100])
    damaged = {p.name: p.read_bytes() for p in (run_copy / "checkpoints").iterdir()}
    code, err = _cli(_train_argv(data, run_copy, "--resume", "--steps", str(STEPS)), capsys)
    assert code == 2 and "Traceback" not in err
    assert "no readable checkpoint" in err.strip().splitlines()[-1]  # never silently from step 0
    assert {p.name: p.read_bytes() for p in (run_copy / "checkpoints").iterdir()} == damaged  # nothing trained


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_code_running_checkpoint_refused_by_cli(run_copy, data, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = run_copy / "checkpoints" / "latest.pt"
    torch.save({"step": 99, "config": {}, "models": _RunsCode(str(marker))}, evil)
    code, err = _cli(_translate_argv(evil, data, tmp_path / "o.png"), capsys)
    _assert_one_line_error(code, err, str(evil), "refused")
    assert not marker.exists()
    # --resume skips it (warning) and takes the newest good numbered checkpoint, still running nothing
    with pytest.warns(RuntimeWarning, match="refused"):
        state, path = load_latest_good(run_copy)
    assert path.name == "step_000008.pt" and not marker.exists()


def _half_then_enospc(write_full):
    """A writer that puts half the bytes in place and then fails like a full disk."""
    def writer(target) -> None:
        buf = io.BytesIO()
        write_full(buf)
        with open(target, "wb") as fh:
            fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    return writer


@pytest.mark.parametrize("which", ["numbered", "latest"])
def test_checkpoint_write_fails_midway(which, run_copy, data, monkeypatch):
    """ENOSPC half-way through writing step_000010.pt (torch.save) or its copy to latest.pt."""
    before = (run_copy / "checkpoints" / "latest.pt").read_bytes()
    if which == "numbered":
        real_save = torch.save
        monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: _half_then_enospc(
            lambda buf: real_save(obj, buf, *a, **k))(f))
    else:
        monkeypatch.setattr(shutil, "copyfile", lambda src, dst, **k: _half_then_enospc(
            lambda buf: buf.write(Path(src).read_bytes()))(dst))
    with pytest.raises(OSError) as info:
        fit(_config(data, run_copy, steps=STEPS + 2), resume=True, progress=False)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    names = sorted(p.name for p in (run_copy / "checkpoints").iterdir())
    expected = ["latest.pt", "step_000004.pt", "step_000008.pt"] + (["step_000010.pt"] if which == "latest" else [])
    assert names == sorted(expected)  # no partial or temporary file
    assert (run_copy / "checkpoints" / "latest.pt").read_bytes() == before
    state, path = load_latest_good(run_copy)
    assert path.name == "latest.pt" and state["step"] == STEPS
    assert not (run_copy / "train.lock").exists()


# ---- NaN / Inf --------------------------------------------------------------------------------------
def test_inf_in_batch_stops_step(data, tmp_path):
    """An Inf pixel in a batch: the step raises naming it and the step, no weight moves (NaN: test_train.py)."""
    from histgan.networks.generator import build_models
    from histgan.train.loop import make_dataset
    from histgan.train.step import make_optimisers, train_step

    config = _config(data, tmp_path / "unused")
    models = build_models(config)
    optimisers = make_optimisers(models, config)
    ds = make_dataset(config)
    batch = {k: torch.stack([ds[i][k] for i in range(2)]) for k in ("x", "y", "x_mask", "y_mask")}
    batch["y"][1, 2, 5, 7] = float("inf")
    before = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in models.items()}
    with pytest.raises(HistganError, match=r"batch 'y' holds NaN/Inf at step 3"):
        train_step(models, optimisers, batch, config, step=3)
    for n, m in models.items():
        assert all(torch.equal(v, before[n][k]) for k, v in m.state_dict().items()), n


def test_nan_pixel_in_training_file_stops_run(data_copy, tmp_path, capsys):
    """A float TIFF holding a NaN pixel: the run stops with exit 2, naming the step and the image."""
    src = data_copy / "trainA" / "x0001.png"
    grey = np.asarray(Image.open(src).convert("L"), dtype=np.float32) / 255.0
    grey[3, 4] = np.nan
    Image.fromarray(grey, mode="F").save(data_copy / "trainA" / "x0001.tif")
    src.unlink()
    code, err = _cli(_train_argv(data_copy, tmp_path / "out", "--steps", "2"), capsys)
    _assert_one_line_error(code, err, "NaN", "x0001.tif")
    assert re.search(r"at step [12]\b", err)


def test_nan_loss_stops_run_and_keeps_checkpoint(run_copy, data, monkeypatch, capsys):
    import histgan.train.step

    real = histgan.train.step.cycle_loss
    calls = []

    def cycle_loss(a, b):  # step 9 (the first after resuming from 8) gets a NaN cycle loss
        calls.append(1)
        return real(a, b) * float("nan") if len(calls) == 1 else real(a, b)

    monkeypatch.setattr(histgan.train.step, "cycle_loss", cycle_loss)
    before = (run_copy / "checkpoints" / "latest.pt").read_bytes()
    code, err = _cli(_train_argv(data, run_copy, "--resume", "--steps", str(STEPS + 4)), capsys)
    _assert_one_line_error(code, err, "loss 'cycle_x' is nan at step 9")
    assert (run_copy / "checkpoints" / "latest.pt").read_bytes() == before
    assert load_checkpoint(run_copy / "checkpoints" / "latest.pt")["step"] == STEPS
    assert not (run_copy / "train.lock").exists()


# ---- the run lock ---------------------------------------------------------------------------------
def test_second_training_on_same_run_refused(data, tmp_path, capsys):
    owner = subprocess.Popen(["sleep", "60"])  # stands in for a training process that is alive
    try:
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "train.lock").write_text(f"{owner.pid}\n")
        code, err = _cli(_train_argv(data, tmp_path / "out"), capsys)
        _assert_one_line_error(code, err, f"in use by training process {owner.pid}")
        assert (tmp_path / "out" / "train.lock").read_text().strip() == str(owner.pid)  # not stolen
    finally:
        owner.kill()
        owner.wait()


def test_stale_lock_of_dead_process_taken_over(data, tmp_path, capsys):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "train.lock").write_text(f"{dead.pid}\n")
    code, err = _cli(_train_argv(data, tmp_path / "out"), capsys)
    assert code == 0, err
    assert "stale lock" in err
    assert not (tmp_path / "out" / "train.lock").exists()
    assert load_checkpoint(tmp_path / "out" / "checkpoints" / "latest.pt")["step"] == 1


# ---- SIGKILL, then resume -------------------------------------------------------------------------
def _descendants(pid: int) -> list[int]:
    """PIDs of all live descendants of ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill_at_random_step(argv: list[str], run_dir: Path, rng: random.Random, launcher: list[str],
                         env: dict[str, str] | None = None) -> int:
    """Start training; SIGKILL it and every process it started once losses.jsonl reaches a random step in 5..7."""
    target = rng.randint(STEPS // 2 + 1, STEPS - 1)
    proc = subprocess.Popen([*launcher, *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    log = run_dir / "losses.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) >= target:
            victims = [proc.pid, *_descendants(proc.pid)]  # torchrun's workers have their own sessions
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            while any(_running(pid) for pid in victims[1:]):
                time.sleep(0.02)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    killed_at = len(log.read_text().splitlines())
    assert killed_at < STEPS, "the run finished before it could be killed"
    return killed_at


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sigkill_then_resume_bit_identical_ddp_gloo(data, tmp_path):
    """2-process gloo DDP (torchrun): uninterrupted vs SIGKILL of the whole job at a random step + resume."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

    def launcher() -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                f"--master_port={_free_port()}", "-m", "histgan"]

    def argv(out: Path) -> list[str]:
        return ["train", "--variant", "histgan_bi", "--data", str(data), "--out", str(out), "--preset", "quick",
                "--steps", str(STEPS), "--batch-size", "1", "--device", "cpu", "--no-progress"]

    whole = subprocess.run([*launcher(), *argv(tmp_path / "whole")], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-3000:]
    seed = random.randrange(1 << 30)
    print(f"kill step drawn with random.Random({seed})")
    _kill_at_random_step(argv(tmp_path / "cut"), tmp_path / "cut", random.Random(seed), launcher(), env)
    resumed = subprocess.run([*launcher(), *argv(tmp_path / "cut"), "--resume"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((tmp_path / "cut" / "environment.json").read_text())["started_at_step"] == 4
    _assert_same_weights(tmp_path / "whole", tmp_path / "cut")


# ---- the README table matches this file -------------------------------------------------------------
def _table_node_ids() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Reliability", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"`(tests/[\w/]+\.py::[^`]+)`", section)


def test_reliability_table_matches_tests():
    ids = _table_node_ids()
    assert ids and len(ids) == len(set(ids)), "node ids in the README table must be unique"
    files = sorted({i.split("::")[0] for i in ids} | {"tests/test_faults.py"})
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    collected = {line.strip() for line in proc.stdout.splitlines() if "::" in line}
    assert not set(ids) - collected, f"README names tests that do not exist: {sorted(set(ids) - collected)}"
    mine = {i for i in collected if i.startswith("tests/test_faults.py::")}
    mine.discard("tests/test_faults.py::test_reliability_table_matches_tests")
    assert not mine - set(ids), f"tests missing from the README table: {sorted(mine - set(ids))}"
