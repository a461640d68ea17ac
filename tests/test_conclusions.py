"""The evaluation page's closing sentences follow the numbers they state, whichever way they fall."""

from __future__ import annotations

import pytest

from histgan.eval.baselines import BASELINES
from histgan.eval.conclusions import TARGET_DELTA_E, reproduction_statements
from histgan.eval.results import EvalResult

REALISM = {"swd_fg": 50.0, "swd_whole": 90.0, "c2st_fg": 0.8, "c2st_whole": 0.9, "stripes": 0.5}
CALIBRATION = {"floor": {"swd_fg": 20.0, "c2st_fg": 0.55, "stripes": 0.5},
               "ground_truth": {"swd_fg": 25.0, "stripes": 0.48},
               "ceiling": {"swd_fg": 150.0, "c2st_fg": 1.0}}


def _results(delta: dict[str, float], ssim: dict[str, float], realism: dict[str, dict] | None = None):
    return {n: EvalResult(n, [], {"delta_e_mean": d, "ssim_gt_fg_mean": ssim[n], **(realism or {}).get(n, {})},
                          calibration=CALIBRATION if realism else None) for n, d in delta.items()}


def _case(bi: float, cyclegan: float, realism: bool = False):
    delta = {"cyclegan": cyclegan, "cyclegan_sn": cyclegan + 0.4, "histgan_uni": bi + 0.3, "histgan_bi": bi,
             **{n: 0.5 + i for i, n in enumerate(BASELINES)}}
    ssim = {n: 0.8 for n in delta} | {"histgan_bi": 0.84}
    extra = {n: dict(REALISM) for n in delta} | {"histgan_bi": dict(REALISM, swd_fg=40.0, swd_whole=80.0,
                                                                      c2st_fg=0.7, c2st_whole=0.85)}
    results = _results(delta, ssim, extra if realism else None)
    shifted = {"histgan_bi": EvalResult("b", [], {"delta_e_mean": bi + 3.0}),
               "baseline_reinhard": EvalResult("r", [], {"delta_e_mean": 0.9})}
    return reproduction_statements(results, "ssim_gt_fg_mean", shifted, masker_iou=0.97, delta_e_auto_masks=bi + 0.1)


def test_the_colour_sentences_state_the_ratio_and_the_direction():
    good = _case(bi=4.0, cyclegan=28.0)
    assert good[0].startswith("Conditioning on the reference histogram reduced") and "ratio 7.0" in good[0]
    assert "our target ≥ 3 is met" in good[0]
    bad = _case(bi=30.0, cyclegan=28.0)
    assert "did not reduce" in bad[0] and "our target ≥ 3 is not met" in bad[0]
    assert "(the paper: D, D, B, B)" in good[1], "the paper's grades are graded from its numbers (14.1, 13.7, 5.0, 4.6)"


@pytest.mark.parametrize("bi, uni, shown", [(2.93, 2.94, "2.93 vs. 2.94"), (2.9, 3.3, "2.9 vs. 3.3"),
                                            (2.931, 2.934, "2.931 vs. 2.934"), (2.9, 2.9, "2.9 vs. 2.9")])
def test_two_numbers_compared_get_the_decimals_that_tell_them_apart(bi, uni, shown):
    """One decimal, unless the two round alike: "2.9 vs. 2.9 (both directions better)" told a reader nothing."""
    delta = {"cyclegan": 28.0, "cyclegan_sn": 28.4, "histgan_uni": uni, "histgan_bi": bi,
             **{n: 0.5 + i for i, n in enumerate(BASELINES)}}
    shifted = {"histgan_bi": EvalResult("b", [], {"delta_e_mean": 5.0}),
               "baseline_reinhard": EvalResult("r", [], {"delta_e_mean": 0.9})}
    lines = reproduction_statements(_results(delta, {n: 0.8 for n in delta}), "ssim_gt_fg_mean", shifted, 0.97, 3.0)
    (line,) = [s for s in lines if s.startswith("Both directions vs.")]
    assert f"one direction: {shown} (" in line, line


@pytest.mark.parametrize("bi, met", [(TARGET_DELTA_E - 0.01, True), (TARGET_DELTA_E + 0.01, False)])
def test_the_delta_e_target_is_marked_met_exactly_when_it_is(bi, met):
    (targets,) = [s for s in _case(bi=bi, cyclegan=28.0, realism=True) if s.startswith("Our targets")]
    assert f"mean ΔE ≤ {TARGET_DELTA_E} (JIS A): {'met' if met else 'not met'}" in targets
    assert "SWD (whole and fg) below every baseline's: met" in targets
    assert "C2ST accuracy (whole and fg) below every baseline's: met" in targets


def test_realism_sentences_only_when_realism_was_measured():
    assert not any("SWD" in s for s in _case(bi=4.0, cyclegan=28.0))
    assert sum("SWD" in s or "classifier" in s for s in _case(bi=4.0, cyclegan=28.0, realism=True)) >= 2


def test_the_masker_and_shifted_reference_sentences_carry_their_numbers():
    last = _case(bi=4.0, cyclegan=28.0)[-2:]
    assert "from 4.0 to 7.0" in last[0] and "from 2.5 to 0.9" in last[0]  # Reinhard is the third baseline: 2.5
    assert "IoU 0.970 (target ≥ 0.95: met)" in last[1] and "+0.10 (target: within 0.3, met)" in last[1]


def _scale_case(gt_c2st: float, bi_c2st: float):
    """Realism with a ground-truth two-sample score, 128 images a set (chance SD 0.5 / sqrt(128) ≈ 0.044)."""
    delta = {"cyclegan": 28.0, "cyclegan_sn": 28.4, "histgan_uni": 4.3, "histgan_bi": 4.0,
             **{n: 0.5 + i for i, n in enumerate(BASELINES)}}
    ssim = {n: 0.8 for n in delta}
    extra = {n: dict(REALISM, c2st_whole=0.99, c2st_fg=0.99, realism_n=128) for n in delta}
    extra |= {n: dict(REALISM, c2st_whole=0.75 + 0.05 * i, c2st_fg=0.72 + 0.05 * i, realism_n=128)
              for i, n in enumerate(BASELINES)}
    extra["histgan_bi"] = dict(REALISM, swd_fg=40.0, swd_whole=80.0, c2st_fg=bi_c2st, c2st_whole=bi_c2st, realism_n=128)
    calibration = {**CALIBRATION, "ground_truth": {**CALIBRATION["ground_truth"], "swd_whole": 55.0,
                                                   "c2st_whole": gt_c2st, "c2st_fg": gt_c2st}}
    results = {n: EvalResult(n, [], {"delta_e_mean": d, "ssim_gt_fg_mean": ssim[n], **extra[n]},
                             calibration=calibration) for n, d in delta.items()}
    shifted = {"histgan_bi": EvalResult("b", [], {"delta_e_mean": 7.0}),
               "baseline_reinhard": EvalResult("r", [], {"delta_e_mean": 0.9})}
    return reproduction_statements(results, "ssim_gt_fg_mean", shifted, masker_iou=0.97, delta_e_auto_masks=4.1)


def test_the_two_sample_target_is_called_out_of_reach_only_when_a_perfect_translator_could_not_meet_it():
    # the baselines' best: 0.75 whole and 0.72 fg (see _scale_case); 2 SD = 2 · 0.5 / sqrt(128) = 0.088
    close = _scale_case(gt_c2st=0.70, bi_c2st=0.85)  # the true targets 1.1 and 0.5 SD below them: out of reach
    (scale,) = [s for s in close if s.startswith("How fine the two-sample test is")]
    assert "0.5 ± 0.044" in scale and "Not even a perfect translator" in scale
    (targets,) = [s for s in close if s.startswith("Our targets")]
    assert "below every baseline's: not met, and out of this test's reach at this set size" in targets
    far = _scale_case(gt_c2st=0.55, bi_c2st=0.85)  # 4.5 and 3.8 SD below: a good translator could meet it
    (scale,) = [s for s in far if s.startswith("How fine the two-sample test is")]
    assert "within this test's reach" in scale
    (targets,) = [s for s in far if s.startswith("Our targets")]
    assert "C2ST accuracy (whole and fg) below every baseline's: not met;" in targets
    met = _scale_case(gt_c2st=0.70, bi_c2st=0.60)  # below every baseline: met, whatever the resolution
    (targets,) = [s for s in met if s.startswith("Our targets")]
    assert "C2ST accuracy (whole and fg) below every baseline's: met;" in targets
    (after,) = [s for s in close if s.startswith("Both directions scored")]
    assert "0.85 and 0.85: 3.4 and 3.4 standard deviations above the true targets" in after


@pytest.mark.parametrize("bi, verdict", [(0.5, "no worse than any baseline's"), (2.5, "between the baselines'"),
                                         (9.0, "worse than every baseline's")])
def test_the_rim_sentence_places_the_model_among_the_baselines(bi, verdict):
    """Edge excess (rims along the silhouette) is stated when every run has it, with the verdict its numbers
    give (baselines here 1, 2, 3, 4), and left out when one lacks it."""
    results = _results({"cyclegan": 28.0, "cyclegan_sn": 28.4, "histgan_uni": 4.3, "histgan_bi": 4.0,
                        **{n: 0.5 + i for i, n in enumerate(BASELINES)}}, {n: 0.8 for n in ["cyclegan", "cyclegan_sn",
                        "histgan_uni", "histgan_bi", *BASELINES]},
                       {"cyclegan": dict(REALISM, edge_excess_mean=-0.9), "cyclegan_sn": dict(REALISM),
                        "histgan_uni": dict(REALISM), "histgan_bi": dict(REALISM, edge_excess_mean=bi),
                        **{n: dict(REALISM, edge_excess_mean=1.0 + i) for i, n in enumerate(BASELINES)}})
    shifted = {"histgan_bi": EvalResult("b", [], {"delta_e_mean": 7.0}),
               "baseline_reinhard": EvalResult("r", [], {"delta_e_mean": 0.9})}
    say = lambda: reproduction_statements(results, "ssim_gt_fg_mean", shifted, 0.97, 4.1)  # noqa: E731
    (rims,) = [s for s in say() if s.startswith("Rims")]
    assert f"both directions {bi:.2f}, the plain CycleGAN -0.90, the baselines 1.00 to 4.00" in rims
    assert rims.endswith(f"edges are {verdict}.")
    del results["histgan_bi"].summary["edge_excess_mean"]
    assert not any(s.startswith("Rims") for s in say())
