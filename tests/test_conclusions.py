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
