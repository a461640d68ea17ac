"""GPU readiness proven on CPU: no read-back in a non-logging step, late but exact NaN stops, one loader per run."""

import sys

import pytest
import torch

import histgan.data.loader as loader
import histgan.train.loop as train
import histgan.train.step as step
from histgan.train.checkpoint import load_checkpoint
from histgan.config import make_config
from histgan.errors import HistganError
from histgan.histogram import soft_histogram, trusted_inputs
from histgan.data.synthetic import write_dataset

READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "synth", size=32, n_train=6, n_test=2, progress=False)


def test_a_non_logging_step_reads_nothing_back(data, tmp_path, monkeypatch):
    """Count every tensor → Python read inside fit's per-step work. Exempt, because they are host
    tensors on a GPU too: the image pool's CPU random draws. (Adam's step counters are not: the fused
    Adam of make_optimisers keeps them on the parameters' device and never reads them back.)"""
    calls: dict[int, list[str]] = {}
    state = {"step": None}

    def exempt(t):
        return sys._getframe(2).f_code is step.ImagePool.query.__code__

    for name in READS:
        real = getattr(torch.Tensor, name)

        def counting(self, *a, _real=real, _name=name, **k):
            if state["step"] is not None and not exempt(self):
                calls.setdefault(state["step"], []).append(_name)
            return _real(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counting)

    real_step, seen = train._lazy_step, []

    def watched(models, optimisers, batch, *args):
        state["step"] = len(seen) + 1
        seen.append(state["step"])
        try:
            return real_step(models, optimisers, batch, *args)
        finally:
            state["step"] = None

    monkeypatch.setattr(train, "_lazy_step", watched)
    c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(tmp_path / "run"), steps=6,
                    log_every=3, checkpoint_every=3, sample_every=0, pool_size=2, ema=0.9, lambda_mean=0.1,
                    colour_head=True, code_moments=True, backdrop_code="middle")  # the average, the mean-colour
    # term, the colour head, the moments and the backdrop (its dropout draws on the device) too
    train.fit(c, progress=False)
    assert seen == [1, 2, 3, 4, 5, 6]
    assert calls == {}, f"reads inside training steps: {calls}"


def test_the_counter_sees_a_read(monkeypatch):
    """The instrument works: a check that reads (train_step's batch check) is counted."""
    count = []
    real = torch.Tensor.__bool__
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda self: count.append(1) or real(self))
    step._check_batch({"x": torch.zeros(1), "y": torch.zeros(1)}, 1)
    assert len(count) == 2


def test_a_nan_is_caught_at_the_next_log_step_before_any_checkpoint(data, tmp_path, monkeypatch):
    real = train.make_dataset

    class Poisoned(torch.utils.data.Dataset):
        def __init__(self, inner):
            self.inner, self.calls, self.epoch = inner, 0, 0

        def __len__(self):
            return len(self.inner)

        def set_epoch(self, e):
            self.epoch = e
            self.inner.set_epoch(e)

        def __getitem__(self, i):
            self.calls += 1
            item = dict(self.inner[i])
            if self.calls > 4 + 10:  # 4 sample-grid items, then 5 good steps of 2
                item["y"] = item["y"] * float("nan")
            return item

    monkeypatch.setattr(train, "make_dataset", lambda c: Poisoned(real(c)))
    c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(tmp_path / "run"), steps=12,
                    log_every=4, checkpoint_every=4, sample_every=0)
    with pytest.raises(HistganError, match="batch 'y' holds NaN/Inf at step 6"):
        train.fit(c, progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["step"] == 4, "no checkpoint after a NaN"
    assert not (tmp_path / "run" / "checkpoints" / "step_000008.pt").exists()


def test_the_loader_is_built_once_per_run(data, tmp_path, monkeypatch):
    built = []

    class Counting(torch.utils.data.DataLoader):
        def __init__(self, *a, **k):
            built.append(k)
            super().__init__(*a, **k)

    monkeypatch.setattr(loader, "DataLoader", Counting)
    c = make_config("quick", variant="cyclegan", data=str(data), run_dir=str(tmp_path / "run"), steps=8)
    train.fit(c, progress=False)  # 6 items, batch 2: 3 steps per epoch, so 3 epochs
    assert len(built) == 1 and built[0]["num_workers"] == 0 and built[0]["pin_memory"] is False


def test_epoch_batch_sampler_orders_resumes_and_splits_ranks():
    whole = loader.EpochBatchSampler(7, 2, seed=3)
    it = iter(whole)
    batches = [next(it) for _ in range(9)]  # 3 per epoch (7 // 2), 3 epochs
    for e in range(3):
        keys = [k for b in batches[3 * e:3 * e + 3] for k in b]
        assert {ep for ep, _ in keys} == {e} and len({i for _, i in keys}) == 6
        assert [i for _, i in keys] == whole.epoch_order(e)
    assert batches[0] != batches[3], "reshuffled per epoch"
    resumed = iter(loader.EpochBatchSampler(7, 2, seed=3, start=4))
    assert [next(resumed) for _ in range(5)] == batches[4:], "resuming at step 4 continues the same stream"
    ranks = [loader.EpochBatchSampler(8, 2, seed=3, rank=r, world_size=2).epoch_order(0) for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1]) and len(ranks[0]) == len(ranks[1]) == 4
    with pytest.raises(HistganError, match="batch-size"):
        loader.EpochBatchSampler(3, 2, seed=0, world_size=2)


@pytest.mark.parametrize("bins", [16, 64])  # one window of all edges (J = 1), and windows (index_add_)
def test_trusted_histogram_equals_checked_and_turns_nan_into_nan(bins):
    g = torch.Generator().manual_seed(0)
    images, mask = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1, (torch.rand(2, 1, 8, 8, generator=g) > 0.3).float()
    checked = soft_histogram(images, bins, mask=mask)
    with trusted_inputs():
        assert torch.equal(soft_histogram(images, bins, mask=mask), checked)
        images[0, 0, 0, 0] = float("nan")
        h = soft_histogram(images, bins, mask=mask)
    assert torch.isnan(h[0, 0].sum()) and torch.equal(h[1], checked[1]), "NaN reaches its row's loss, no wild index"
    with pytest.raises(ValueError, match="NaN"):
        soft_histogram(images, bins, mask=mask)


@pytest.mark.slow
def test_loader_workers_give_the_same_run_as_loading_in_process(data, tmp_path):
    """Persistent workers see each epoch's pairing too (the epoch travels with every index): 3 epochs
    with 2 workers end bit-identical to loading in the training process."""
    runs = {}
    for workers in (0, 2):
        c = make_config("quick", variant="histgan_bi", data=str(data), run_dir=str(tmp_path / f"w{workers}"),
                        steps=8, flip=True, num_workers=workers)
        runs[workers] = load_checkpoint(train.fit(c, progress=False) / "checkpoints" / "latest.pt")
    for name, weights in runs[0]["models"].items():
        for key, tensor in weights.items():
            assert torch.equal(tensor, runs[2]["models"][name][key]), f"{name}.{key}"
