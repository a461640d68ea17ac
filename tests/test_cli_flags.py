"""One spelling per concept across subcommands: shared flags, examples in every --help, bad --jobs/--shard."""

import argparse

import pytest

from histgan.book import sweep
from histgan.cli import build_parser, main

SHARED = {"--preset": "quick", "--steps": "7", "--data": "d", "--out": "o", "--device": "cpu"}
TRAINING = {"train": ["--variant", "cyclegan"], "sweep": ["--name", "n", "--grid", "bins=16"]}


def _subparsers(parser: argparse.ArgumentParser, prefix=()):
    """``(path, parser)`` for every subcommand, nested ones (``data synth``) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _subparsers(sub, (*prefix, name))


@pytest.mark.parametrize("command", sorted(TRAINING))
def test_every_training_subcommand_takes_the_shared_flags(command):
    argv = [command, *TRAINING[command], *[x for kv in SHARED.items() for x in kv]]
    args = build_parser().parse_args(argv)
    assert (args.preset, args.steps, args.data, args.out, args.device) == ("quick", 7, "d", "o", "cpu")


@pytest.mark.parametrize("command, flags", [("evaluate", ("--device", "--data", "--out")),
                                            ("translate", ("--device", "--out"))])
def test_device_data_out_mean_the_same_elsewhere(command, flags):
    options = {s for a in dict(_subparsers(build_parser()))[(command,)]._actions for s in a.option_strings}
    assert set(flags) <= options


def test_every_subcommand_help_shows_an_example():
    found = dict(_subparsers(build_parser()))
    assert {("train",), ("sweep",), ("translate",), ("evaluate",), ("data", "synth")} <= set(found)
    for path, parser in found.items():
        assert "example" in parser.format_help().lower(), f"'{' '.join(path)} --help' shows no example"


def test_sweep_preset_and_device_reach_the_notebook(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(sweep, "run_sweep", lambda name, grid, base, **kw: seen.update(base=base, **kw) or [])
    argv = ["sweep", "--name", "n", "--grid", "bins=16", "--out", str(tmp_path), "--no-collect", "--no-progress"]
    assert main([*argv, "--preset", "cpu", "--device", "cpu", "--jobs", "2", "--shard", "1/3", "--threads", "1"]) == 0
    assert seen["base"] == {"preset": "cpu", "device": "cpu"}
    assert (seen["jobs"], seen["shard"], seen["threads"]) == (2, (1, 3), 1)
    assert main(argv) == 0 and seen["base"] == {} and seen["jobs"] is None and seen["shard"] == (0, 1)


def test_sweep_preset_and_param_disagree_exit_2(tmp_path, capsys):
    argv = ["sweep", "--name", "n", "--grid", "bins=16", "--out", str(tmp_path), "--preset", "cpu", "--param",
            "preset=quick"]
    assert main(argv) == 2 and "--preset" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--jobs", "0"), ("--jobs", "-1"), ("--jobs", "x"), ("--shard", "2/2"),
                                         ("--shard", "1"), ("--shard", "a/b"), ("--threads", "0")])
def test_bad_parallel_flags_exit_2_with_one_line(flag, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--name", "n", "--grid", "bins=16", "--out", str(tmp_path), flag, value])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("histgan: error: ") and flag in err, err


def test_train_flags_of_the_translator_options_reach_the_config(monkeypatch, tmp_path):
    """--generator, --gan-loss, --ema, --warmup, --injection become TrainConfig fields of the run."""
    import histgan.train.loop

    seen = {}
    monkeypatch.setattr(histgan.train.loop, "fit", lambda config, resume, progress: seen.setdefault("c", config))
    code = main(["train", "--variant", "histgan_bi", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                 "--preset", "quick", "--generator", "unet", "--gan-loss", "lsgan", "--ema", "0.99",
                 "--warmup", "3", "--injection", "adain", "--padding", "reflect", "--recolour-hue", "15",
                 "--recolour-chroma", "1.4", "--lambda-mean", "0.1", "--hist-kind", "emd", "--colour-head",
                 "--no-encoder-sn", "--identity-hue", "20", "--identity-chroma", "1.5",
                 "--code-lr", "10", "--code-moments", "--backdrop-code", "middle", "--mask-input", "--no-progress"])
    c = seen["c"]
    assert c.code_moments and c.backdrop_code == "middle" and c.mask_input
    assert (c.lambda_mean, c.hist_kind, c.colour_head, c.encoder_sn) == (0.1, "emd", True, False)
    assert (c.identity_hue, c.identity_chroma, c.code_lr) == (20.0, 1.5, 10.0)
    assert code == 0 and (c.generator, c.gan_loss, c.ema, c.warmup, c.injection) == ("unet", "lsgan", 0.99, 3, "adain")
    assert (c.padding, c.recolour_hue, c.recolour_chroma) == ("reflect", 15.0, 1.4)
    for bad in (["--padding", "circular"], ["--recolour-hue", "200"], ["--recolour-chroma", "0.5"],
                ["--lambda-mean", "-1"], ["--hist-kind", "l1"], ["--identity-hue", "-5"],
                ["--identity-chroma", "0.9"], ["--code-lr", "-2"], ["--backdrop-code", "yes"],
                ["--backdrop-code", "middle", "--injection", "film"]):
        try:
            code = main(["train", "--variant", "histgan_bi", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                         "--preset", "quick", *bad])
        except SystemExit as exc:
            code = exc.code
        assert code == 2, bad
    assert main(["train", "--variant", "histgan_bi", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                 "--preset", "quick", "--ema", "1.5"]) == 2
