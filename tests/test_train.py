"""Training engine: config, pure step, fit's run folder, NaN stop, resume (SIGKILL), lock, DDP."""

import copy
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import histgan.train.loop as train
import histgan.train.step as step
from histgan.train.variants import variant_jobs
from histgan.cli import main
from histgan.train.checkpoint import load_checkpoint
from histgan.config import PRESETS, VARIANTS, TrainConfig, make_config
from histgan.errors import HistganError
from histgan.networks.generator import build_models
from histgan.data.synthetic import write_dataset

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "synth", size=32, n_train=6, n_test=2, progress=False)


def _batch(n=2, size=32):
    g = torch.Generator().manual_seed(0)
    ones = torch.ones(n, 1, size, size)
    return {"x": torch.rand(n, 3, size, size, generator=g) * 2 - 1, "y": torch.rand(n, 3, size, size, generator=g) * 2 - 1,
            "x_mask": ones, "y_mask": ones.clone(), "x_name": ["a.png"] * n, "y_name": ["b.png"] * n}


# ---- config -------------------------------------------------------------------------------------
def test_presets_and_json_round_trip(tmp_path):
    for name in PRESETS:
        c = make_config(name, variant="histgan_uni")
        c.to_json(tmp_path / f"{name}.json")
        assert TrainConfig.from_json(tmp_path / f"{name}.json") == c
    assert make_config("cpu", steps=7).steps == 7
    assert make_config("paper").image_size == 256 and make_config("paper").n_blocks == 9


@pytest.mark.parametrize("field, value", [("variant", "pix2pix"), ("bins", 0), ("bandwidth", 0.0),
                                          ("bandwidth", -1.0), ("image_size", 30), ("injection", "add"),
                                          ("gan_loss", "wgan"), ("amp", "yes"), ("lambda_hist", -1.0),
                                          ("steps", 0), ("decay_start", 1.5)])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        make_config("quick", **{field: value})


def test_unknown_preset_and_field(tmp_path):
    with pytest.raises(ValueError, match="preset"):
        make_config("huge")
    with pytest.raises(ValueError, match="colour"):
        make_config("quick", colour=1)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        TrainConfig.from_json(tmp_path / "bad.json")


def test_lr_factor_linear_decay():
    c = make_config("quick", steps=100, decay_start=0.5)
    assert [step.lr_factor(s, c) for s in (0, 49, 50, 75, 99)] == [1.0, 1.0, 1.0, 0.5, 0.02]
    assert step.lr_factor(99, c.replace(decay_start=1.0)) == 1.0


def test_image_pool():
    torch.manual_seed(0)
    assert torch.equal(step.ImagePool(0).query(torch.ones(2, 3, 4, 4)), torch.ones(2, 3, 4, 4))
    pool = step.ImagePool(3)
    first = pool.query(torch.arange(2.0).reshape(2, 1, 1, 1).expand(2, 3, 2, 2))
    assert torch.equal(first[:, 0, 0, 0], torch.tensor([0.0, 1.0])) and len(pool.images) == 2
    out = pool.query(torch.full((40, 3, 2, 2), 9.0))
    assert len(pool.images) == 3 and (out[:, 0, 0, 0] != 9).sum() > 0  # some old fakes come back
    other = step.ImagePool(3)
    other.load(pool.state(), torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(other.images, pool.images))


# ---- the pure step ------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_train_step_every_variant_learns_a_fixed_batch(variant):
    """Six steps on one batch (seed 0): every parameter of G, F, D_x and D_y moves, and at every step
    the generators' loss of eq (7) and both cycle losses fall; for the conditioned variants the
    histogram loss of eq (6) too (measured: by 1–10 % a step)."""
    c = make_config("quick", variant=variant)
    torch.manual_seed(0)
    models = build_models(c)
    opts = step.make_optimisers(models, c)
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in models.items()}
    batch = _batch()
    logs = [step.train_step(models, opts, batch, c, {"x": step.ImagePool(2), "y": step.ImagePool(2)})
            for _ in range(6)]
    expected = {"gan_G", "gan_F", "cycle_x", "cycle_y", "idt_x", "idt_y", "hist_y", "loss_G", "D_x", "D_y"}
    assert set(logs[0]) == expected | ({"hist_x"} if variant == "histgan_bi" else set())
    assert all(math.isfinite(v) for log in logs for v in log.values())
    for name, m in models.items():
        assert all(not torch.equal(p0, p) for p0, p in zip(before[name], m.parameters()) if p.requires_grad), name
    for key in ["loss_G", "cycle_x", "cycle_y"] + (["hist_y"] if c.condition_G else []):
        series = [log[key] for log in logs]
        assert all(b < a for a, b in zip(series, series[1:])), (key, series)


def _twin_steps(c, steps=2):
    """The same models and batch stepped with ``fast=True`` and ``fast=False``: (logs, models) each.

    Eval mode freezes spectral norm's power iteration (u, v stay), the one intended difference."""
    out = {}
    for fast in (True, False):
        torch.manual_seed(0)
        models = build_models(c)
        for m in models.values():
            m.eval()
        opts = step.make_optimisers(models, c)
        pools = {"x": step.ImagePool(2), "y": step.ImagePool(2)}
        torch.manual_seed(1)  # the pools draw from the global RNG
        logs = [step.train_step(models, opts, _batch(), c, pools, fast=fast) for _ in range(steps)]
        out[fast] = logs, models
    return out


@pytest.mark.parametrize("variant, norm", [("histgan_bi", "instance"), ("histgan_uni", "none"),
                                           ("cyclegan", "instance"), ("histgan_bi", "batch")])
def test_fast_step_equals_one_call_per_term(variant, norm):
    """Batched calls and cached spectral norm change nothing but the power-iteration count: with the
    power iteration frozen (eval mode keeps u, v), two steps give the same losses and weights."""
    c = make_config("quick", variant=variant, norm=norm)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # float64: what is left is the rounding of a reordered sum
    try:
        twins = _twin_steps(c)
    finally:
        torch.set_default_dtype(default)
    (fast_logs, fast_models), (ref_logs, ref_models) = twins[True], twins[False]
    for a, b in zip(fast_logs, ref_logs):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12), k
    # the last step's gradients (G and F: eq 7; D_x and D_y: eq 9) to 1e-8 of the network's largest.
    # Not the weights: a bias before an instance norm has a gradient of pure rounding noise, which
    # Adam scales up to a step of size lr either way.
    for name in fast_models:
        scale = max(float(p.grad.abs().max()) for p in ref_models[name].parameters())
        for (k, a), b in zip(fast_models[name].named_parameters(), ref_models[name].parameters()):
            assert a.grad is not None and b.grad is not None, f"{name}.{k}"
            assert torch.allclose(a.grad, b.grad, rtol=1e-6, atol=1e-8 * scale), f"{name}.{k}"


def test_fast_step_runs_one_power_iteration_per_phase():
    """Miyato et al.'s schedule: in training mode a generator's u moves by exactly one power
    iteration per step (three calls share one cached W/σ); a discriminator's by two (G and D phase)."""
    c = make_config("quick", variant="histgan_bi")
    torch.manual_seed(0)
    models = build_models(c)
    opts = step.make_optimisers(models, c)

    def sn(module):
        return module.parametrizations.weight

    def one_iteration(w, u):
        w = w.flatten(1)
        v = torch.nn.functional.normalize(w.t() @ u, dim=0, eps=1e-12)
        return torch.nn.functional.normalize(w @ v, dim=0, eps=1e-12)

    conv_g, conv_d = models["G"].out[1], models["D_y"].net[0]
    w_g, u_g = sn(conv_g).original.detach().clone(), sn(conv_g)[0]._u.clone()
    w_d, u_d = sn(conv_d).original.detach().clone(), sn(conv_d)[0]._u.clone()
    step.train_step(models, opts, _batch(), c, fast=True)
    assert torch.allclose(sn(conv_g)[0]._u, one_iteration(w_g, u_g), atol=1e-6)
    assert torch.allclose(sn(conv_d)[0]._u, one_iteration(w_d, one_iteration(w_d, u_d)), atol=1e-6)
    assert not torch.allclose(one_iteration(w_g, u_g), one_iteration(w_g, one_iteration(w_g, u_g)), atol=1e-6)


def test_train_step_bf16_autocast_on_cpu():
    """The bf16 step computes the float32 step's losses to bf16 precision (measured: within 0.3 %), and
    differs from it, so autocast did run."""
    logs = {}
    for amp in (False, True):
        c = make_config("quick", variant="histgan_bi", amp=amp)
        torch.manual_seed(0)
        models = build_models(c)
        logs[amp] = step.train_step(models, step.make_optimisers(models, c), _batch(), c,
                                    amp_dtype=torch.bfloat16 if amp else None)
        assert next(models["G"].parameters()).dtype == torch.float32  # autocast: float32 master weights
    assert logs[True].keys() == logs[False].keys()
    assert all(logs[True][k] == pytest.approx(logs[False][k], rel=2e-2) for k in logs[False])
    assert any(logs[True][k] != logs[False][k] for k in logs[False])


def test_nan_loss_stops_with_its_name_and_step_and_no_update():
    c = make_config("quick", variant="cyclegan")
    torch.manual_seed(0)
    models = build_models(c)
    opts = step.make_optimisers(models, c)
    with torch.no_grad():
        models["D_y"].net[0].weight[0, 0, 0, 0] = float("nan")
    weights = {k: v.clone() for k, v in models["G"].state_dict().items()}
    with pytest.raises(HistganError, match="loss 'gan_G' is nan at step 17"):
        step.train_step(models, opts, _batch(), c, step=17)
    assert all(torch.equal(weights[k], v) for k, v in models["G"].state_dict().items())


# ---- fit ----------------------------------------------------------------------------------------
def test_fit_writes_the_run_folder(data, tmp_path):
    c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(tmp_path / "run"), steps=8)
    run = train.fit(c, progress=False)
    assert TrainConfig.from_json(run / "config.json") == c
    env = json.loads((run / "environment.json").read_text())
    assert {"python", "torch", "device", "git_commit", "torch_threads"} <= set(env) and env["device"] == "cpu"
    lines = [json.loads(s) for s in (run / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 9))
    assert {"hist_x", "hist_y", "cycle_x", "D_y", "lr"} <= set(lines[0])
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000006.png", "step_000008.png"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest.pt", "step_000004.pt", "step_000008.pt"]
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 8
    assert not (run / "train.lock").exists()
    with pytest.raises(HistganError, match="--resume"):  # never silently overwrite a run
        train.fit(c, progress=False)
    with pytest.raises(HistganError, match="bins=16 .now 8"):
        train.fit(c.replace(bins=8, steps=10), resume=True, progress=False)


def test_nan_in_batch_stops_training_and_keeps_latest(data, tmp_path, monkeypatch):
    real = train.make_dataset

    class Poisoned(torch.utils.data.Dataset):
        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def __len__(self):
            return len(self.inner)

        def set_epoch(self, e):
            self.inner.set_epoch(e)

        def __getitem__(self, i):
            self.calls += 1
            item = dict(self.inner[i])
            if self.calls > 4 + 10:  # 4 sample-grid items, then 5 good steps of 2
                item["y"] = item["y"] * float("nan")
            return item

    monkeypatch.setattr(train, "make_dataset", lambda c: Poisoned(real(c)))
    c = make_config("quick", variant="histgan_uni", data=str(data), run_dir=str(tmp_path / "run"))
    with pytest.raises(HistganError, match="batch 'y' holds NaN/Inf at step 6"):
        train.fit(c, progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["step"] == 4
    assert not (tmp_path / "run" / "train.lock").exists()


def test_missing_data_folder(tmp_path):
    c = make_config("quick", data=str(tmp_path / "none"), run_dir=str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match="none"):
        train.fit(c, progress=False)


def _cli_train(data, out, *extra):
    return [sys.executable, "-m", "histgan", "train", "--variant", "histgan_bi", "--preset", "quick",
            "--data", str(data), "--out", str(out), "--steps", "12", "--no-progress", *extra]


def _weights(run):
    return load_checkpoint(Path(run) / "checkpoints" / "latest.pt")


def _assert_same_state(a, b):
    assert a["step"] == b["step"]
    for name in a["models"]:
        for key, tensor in a["models"][name].items():
            assert torch.equal(tensor, b["models"][name][key]), f"{name}.{key} differs"
    for name in a["optimisers"]:
        for pid, st in a["optimisers"][name]["state"].items():
            for key, tensor in st.items():
                assert torch.equal(tensor, b["optimisers"][name]["state"][pid][key]), f"optimiser {name} {key}"


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(data, tmp_path):
    whole = subprocess.run(_cli_train(data, tmp_path / "whole"), env=ENV, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    proc = subprocess.Popen(_cli_train(data, tmp_path / "cut"), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    target = tmp_path / "cut" / "checkpoints" / "step_000008.pt"
    deadline = time.time() + 300
    while not target.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = load_checkpoint(tmp_path / "cut" / "checkpoints" / "latest.pt")["step"]
    assert 4 <= killed_at < 12  # latest.pt is copied from step_000008.pt just after it appears
    assert (tmp_path / "cut" / "train.lock").exists()  # left behind by the killed process
    resumed = subprocess.run(_cli_train(data, tmp_path / "cut", "--resume"), env=ENV, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_state(_weights(tmp_path / "whole"), _weights(tmp_path / "cut"))
    steps = [json.loads(s)["step"] for s in (tmp_path / "cut" / "losses.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))


def test_resume_from_a_corrupt_latest_falls_back(data, tmp_path):
    c = make_config("quick", variant="cyclegan_sn", data=str(data), run_dir=str(tmp_path / "run"), steps=8)
    train.fit(c, progress=False)
    (tmp_path / "run" / "checkpoints" / "latest.pt").write_bytes(b"\x00" * 10)
    with pytest.warns(RuntimeWarning, match="latest.pt"):
        train.fit(c.replace(steps=10), resume=True, progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["step"] == 10


def test_cli_train_bad_arguments(data, tmp_path, capsys):
    def run(*args):
        try:
            code = main(["train", *args])
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
        return code, capsys.readouterr().err

    base = ["--variant", "cyclegan", "--data", str(data), "--out", str(tmp_path / "r"), "--preset", "quick"]
    cases = [(base + ["--bins", "0"], "bins"), (base + ["--bandwidth", "-1"], "bandwidth"),
             (base + ["--steps", "x"], "--steps"),
             (["--variant", "cyclegan", "--data", str(tmp_path / "no"), "--out", str(tmp_path / "r")], "does not exist"),
             (["--variant", "gan", "--data", str(data), "--out", "r"], "variant")]
    if not torch.cuda.is_available():
        cases.append((base + ["--device", "cuda"], "no CUDA GPU"))
    for args, message in cases:
        code, err = run(*args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_process_gloo_and_resume_in_one(data, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "histgan", "train", "--variant", "histgan_bi", "--preset",
           "quick", "--data", str(data), "--out", str(tmp_path / "ddp"), "--steps", "4", "--batch-size", "1",
           "--no-progress"]
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    state = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "latest.pt")
    assert state["step"] == 4 and state["world_size"] == 2
    lines = (tmp_path / "ddp" / "losses.jsonl").read_text().splitlines()
    assert len(lines) == 4  # rank 0 alone logs
    c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(tmp_path / "ddp"), steps=6,
                    batch_size=1)
    train.fit(c, resume=True, progress=False)  # the rank-0 checkpoint continues in one process
    assert load_checkpoint(tmp_path / "ddp" / "checkpoints" / "latest.pt")["step"] == 6


def test_runtime_device_amp_seed_and_rng_state():
    import random

    import numpy as np

    from histgan.train.runtime import autocast_dtype, get_rng_state, seed_everything, select_device, set_rng_state

    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype(True, cpu) == torch.bfloat16
    assert autocast_dtype(False, cpu) is None
    if not torch.cuda.is_available():
        assert select_device("auto").type in ("cpu", "mps")
        with pytest.raises(HistganError, match="no CUDA GPU"):
            select_device("cuda:0")
    with pytest.raises(HistganError, match="not a device name"):
        select_device("tpu")
    seed_everything(5)
    first = (random.random(), float(np.random.rand()), float(torch.rand(())))
    seed_everything(5)
    state = get_rng_state()
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == first
    set_rng_state(state)
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == first


@pytest.mark.parametrize("capability, expected", [((7, 5), None), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_auto_bf16_only_where_native(capability, expected, monkeypatch):
    from histgan.train.runtime import autocast_dtype

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert autocast_dtype("auto", torch.device("cuda")) == expected
    assert autocast_dtype(True, torch.device("cuda")) == torch.bfloat16, "forced"


def test_cpu_determinism_is_undone_for_a_later_gpu_run():
    from histgan.train.runtime import seed_everything

    before = torch.are_deterministic_algorithms_enabled()
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        seed_everything(0, deterministic=False)  # what fit does for a CUDA run
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before, warn_only=True)


def test_spectral_norm_runs_outside_bf16_autocast(monkeypatch):
    """W / σ(W) and its power iteration are computed before autocast is entered (on CUDA, autocast
    would run their matrix-vector products in bf16): every call of the spectral-norm
    parametrisation during a bf16 step sees autocast off."""
    from torch.nn.utils.parametrizations import _SpectralNorm

    seen = []
    real = _SpectralNorm.forward

    def spy(self, weight):
        seen.append(torch.is_autocast_enabled("cpu"))
        return real(self, weight)

    monkeypatch.setattr(_SpectralNorm, "forward", spy)
    c = make_config("quick", variant="histgan_bi", amp=True)
    torch.manual_seed(0)
    models = build_models(c)
    step.train_step(models, step.make_optimisers(models, c), _batch(), c, amp_dtype=torch.bfloat16)
    assert seen and not any(seen)


def test_fit_on_a_finished_run_changes_nothing(data, tmp_path):
    """Resuming a run that reached its last step (as the training page does after the main job's train
    stage) trains nothing and rewrites nothing: checkpoints, losses and the environment report stay."""
    c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(tmp_path / "r"), steps=2,
                    checkpoint_every=2, sample_every=0, device="cpu")
    run = train.fit(c, progress=False)
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "run.lock"}
    assert train.fit(c, resume=True, progress=False) == run
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "run.lock"} == files


def test_variant_jobs_name_the_four_runs_and_the_masker(tmp_path):
    """The main job's train stage: one job per variant into variant=<name> (sweep's run ids), each resuming
    its folder, and the masker inside the histgan_bi run, where translate finds it."""
    from histgan.train.masker import MASKER_DIRNAME
    from histgan.book.sweep import run_id

    jobs = variant_jobs(tmp_path / "runs", tmp_path / "data", "cpu", steps=7, masker_steps=3)
    assert sorted(j.name for j in jobs) == sorted([*VARIANTS, "masker"]) and jobs[-1].name == "masker"
    for j in jobs[:-1]:
        assert j.run_dir == tmp_path / "runs" / run_id({"variant": j.name}, ["variant"])
        assert j.target_name == "histgan.train.variants:train_run"
        assert j.params == {"run_dir": str(j.run_dir), "preset": "cpu", "variant": j.name,
                            "data": str(tmp_path / "data"), "resume": "auto", "progress": True, "steps": 7}
    masker = jobs[-1]
    assert masker.run_dir == tmp_path / "runs" / "variant=histgan_bi" / MASKER_DIRNAME
    assert masker.target_name == "histgan.train.masker:fit_masker" and masker.params["steps"] == 3
    assert [j.name for j in variant_jobs(tmp_path, tmp_path, "quick")] == list(reversed(VARIANTS))


_POISON_RANK_1 = '''
import os, sys
import torch
import histgan.train.loop as T

original, calls = T.to_device, [0]


def poisoned(batch, device):
    batch = original(batch, device)
    calls[0] += 1
    if os.environ.get("RANK") == "1" and calls[0] == 3:  # only the second process sees a NaN, at step 3
        batch["x"] = torch.full_like(batch["x"], float("nan"))
    return batch


T.to_device = poisoned
from histgan.cli import main
sys.exit(main(sys.argv[1:]))
'''


def test_ddp_nan_on_one_rank_stops_every_rank_without_a_hang(data, tmp_path):
    """A NaN seen by one DDP process stops both: the ranks agree on finiteness before the next
    collective, so neither waits forever (torchrun would otherwise hang until its timeout)."""
    script = tmp_path / "poison.py"
    script.write_text(_POISON_RANK_1)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(script), "train", "--variant", "histgan_bi", "--preset", "quick",
           "--data", str(data), "--out", str(tmp_path / "ddp"), "--steps", "6", "--batch-size", "1", "--no-progress"]
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=240)
    assert r.returncode != 0, r.stderr[-3000:]
    assert "batch 'x' holds NaN/Inf at step 3" in r.stderr, r.stderr[-3000:]
    assert "another process found a NaN/Inf by step 3" in r.stderr, r.stderr[-3000:]


def test_code_lr_gives_the_colour_code_path_its_own_rate(data, tmp_path):
    """``code_lr``: the generators' optimiser splits into the code's path (histogram encoders, FiLM
    projections, found here by name) and the rest, and the loop's rate of each is ``lr_scale · lr``.
    Adam's first update of a weight is ``lr · g / (|g| + ε)``, so a zero-initialised FiLM projection
    holds, after one step, entries of size at most (and, where its gradient is not tiny, about) its
    group's rate."""
    def code_name(name):
        return name.startswith("encoder_hist.") or ".film." in f".{name}" or name.startswith(("film.", "head."))

    c = make_config("quick", variant="histgan_bi", colour_head=True, injection="adain")
    models = build_models(c)
    assert [len(g["params"]) for g in step.make_optimisers(models, c)["G"].param_groups] == \
        [sum(1 for n in "GF" for _ in models[n].parameters())]  # code_lr = 1: one group, as before
    opts = step.make_optimisers(models, c.replace(code_lr=10.0))
    rest, code = opts["G"].param_groups
    expect = {id(p) for n in "GF" for name, p in models[n].named_parameters() if code_name(name)}
    assert {id(p) for p in code["params"]} == expect and (rest["lr_scale"], code["lr_scale"]) == (1.0, 10.0)
    assert len(rest["params"]) + len(code["params"]) == sum(1 for n in "GF" for _ in models[n].parameters())
    assert len(opts["D"].param_groups) == 1

    top = {}
    for scale in (1.0, 10.0):
        run = train.fit(c.replace(data=str(data), run_dir=str(tmp_path / str(scale)), steps=1, code_lr=scale,
                                  decay_start=1.0), progress=False)
        g = load_checkpoint(run / "checkpoints" / "latest.pt")["models"]["G"]
        top[scale] = max(float(v.abs().max()) for k, v in g.items() if k.startswith("head.proj.weight"))
    lr = c.lr
    assert lr * 0.5 < top[1.0] <= lr * 1.0001 and 10 * lr * 0.5 < top[10.0] <= 10 * lr * 1.0001


def test_fused_adam_is_adam_and_resumes_an_unfused_state():
    """make_optimisers uses torch's fused Adam on CPU; its update is Adam's formula (Kingma & Ba, with the
    run's betas, written out here in float64), and an optimiser state saved by the one-operation-at-a-time
    Adam (checkpoints written before) continues in it as it would have continued in the old one."""
    c = make_config("quick", variant="histgan_bi")
    models = {k: torch.nn.Linear(3, 2).double() for k in ("G", "F", "D_x", "D_y")}
    opts = step.make_optimisers(models, c)
    assert all(g["fused"] for o in opts.values() for g in o.param_groups)
    w = models["G"].weight
    start, grads = w.detach().clone(), [torch.randn_like(w) for _ in range(3)]
    m = v = torch.zeros_like(w)
    expect = start.clone()
    (b1, b2), eps, lr = (c.beta1, c.beta2), 1e-8, c.lr
    for t, g in enumerate(grads[:2], 1):
        for p in (p for mod in models.values() for p in mod.parameters()):
            p.grad = torch.zeros_like(p)
        w.grad = g.clone()
        opts["G"].step()
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        expect = expect - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
    assert torch.allclose(w.detach(), expect, rtol=0, atol=1e-12)
    # an unfused Adam's state, loaded into ours, takes the third step as the unfused one does
    old_net = torch.nn.Linear(3, 2).double()
    old = torch.optim.Adam(old_net.parameters(), lr=lr, betas=(b1, b2), foreach=False)
    with torch.no_grad():
        old_net.weight.copy_(start)
    for g in grads[:2]:
        old_net.weight.grad, old_net.bias.grad = g.clone(), torch.zeros_like(old_net.bias)
        old.step()
    new_net = torch.nn.Linear(3, 2).double()
    new_net.load_state_dict(old_net.state_dict())
    new = step.make_optimisers({k: new_net if k == "G" else models[k] for k in models}, c)["G"]
    saved = copy.deepcopy(old.state_dict())  # as from a checkpoint: tensors of its own, not old's
    new.load_state_dict({"state": saved["state"], "param_groups": new.state_dict()["param_groups"]})
    for o, net in ((old, old_net), (new, new_net)):
        for p in (p for g in o.param_groups for p in g["params"]):
            p.grad = torch.zeros_like(p)
        net.weight.grad = grads[2].clone()
        o.step()
    assert torch.allclose(new_net.weight, old_net.weight, rtol=0, atol=1e-12)


def test_weight_average_follows_its_formula_and_resumes_bit_identically(tmp_path):
    """``ema``: the average kept in the checkpoint is β_t-weighted as documented, survives a resume
    unchanged, and is what load_run translates with (spectral norms refreshed for it)."""
    from histgan.inference import load_run
    from histgan.networks.weight_average import WeightAverage

    net = torch.nn.Linear(3, 2)
    avg = WeightAverage(net, 0.9)
    w0 = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    avg.update(net)  # t = 1: β = min(0.9, 2/11)
    beta = 2 / 11
    assert torch.allclose(avg.average[0], beta * w0 + (1 - beta) * (w0 + 1))

    data = tmp_path / "data"
    write_dataset(data, n_train=4, n_test=2, size=32, seed=0, progress=False)
    c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(tmp_path / "a"), ema=0.9,
                    decay_start=1.0)  # a constant lr: 8 steps then 4 more are the same steps as 12
    train.fit(c, progress=False)
    train.fit(c.replace(run_dir=str(tmp_path / "b"), steps=8), progress=False)
    train.fit(c.replace(run_dir=str(tmp_path / "b")), resume=True, progress=False)
    ea = load_checkpoint(tmp_path / "a" / "checkpoints" / "latest.pt")["ema"]
    eb = load_checkpoint(tmp_path / "b" / "checkpoints" / "latest.pt")["ema"]
    assert ea["G"]["updates"] == c.steps == eb["G"]["updates"]
    assert all(torch.equal(ea[k]["params"][n], eb[k]["params"][n]) for k in ("G", "F") for n in ea[k]["params"])
    model = load_run(tmp_path / "a")
    loaded = dict(model.G.named_parameters())
    assert all(torch.equal(loaded[n], v) for n, v in ea["G"]["params"].items())
    raw = load_checkpoint(tmp_path / "a" / "checkpoints" / "latest.pt")["models"]["G"]
    assert any(not torch.equal(raw[n], v) for n, v in ea["G"]["params"].items() if n in raw)
    # the refreshed σ belongs to the averaged weight: W / σ has spectral norm 1
    conv = model.G.out[1]
    assert float(torch.linalg.matrix_norm(conv.weight.detach().flatten(1), 2)) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("fast", [True, False])
def test_identity_term_takes_y_idt_when_the_batch_has_it(fast):
    """With ``y_idt`` in the batch (the colour-restoring identity), G's identity call translates
    ``y_idt`` with y's histogram and compares with ``y``: G never sees ``y`` itself as an input."""
    torch.manual_seed(0)
    c = make_config("quick", variant="histgan_bi", identity_hue=20.0, identity_chroma=1.5)
    models = build_models(c)
    seen = []
    models["G"].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    batch = _batch()
    batch["y_idt"] = batch["y"].flip(1)  # any other image of the same shape
    logs = step.train_step(models, step.make_optimisers(models, c), batch, c, fast=fast)
    inputs = torch.cat(seen)
    assert any(torch.equal(inputs[i : i + 2], batch["y_idt"]) for i in range(len(inputs) - 1))
    assert not any(torch.equal(inputs[i : i + 2], batch["y"]) for i in range(len(inputs) - 1))
    assert logs["idt_y"] > 0
