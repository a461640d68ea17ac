"""True targets between two references (histgan.data.intermediate)."""

import numpy as np
import pytest

from histgan.data.intermediate import SKIN_FIELDS, between, ground_truth_between
from histgan.data.synthetic import ground_truth, ground_truth_mask, load_meta, write_dataset


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("inter") / "set"
    write_dataset(root, size=32, n_train=(1, 1), n_test=(2, 2), seed=5, domain="photo")
    return root


def _names(root, folder):
    return sorted(load_meta(root)["images"][folder])


def test_ends_are_the_two_references_ground_truths(photo_set):
    (x, _), (a, b) = _names(photo_set, "testA"), _names(photo_set, "testB")
    assert np.array_equal(ground_truth_between(photo_set, x, a, b, 0.0), ground_truth(photo_set, x, a))
    end = ground_truth_between(photo_set, x, a, b, 1.0)
    # at t = 1 the skin is b's but the scene (background, camera) stays a's: not b's ground truth, yet
    # its foreground colour is near b's and far from a's
    fg = ground_truth_mask(photo_set, x)
    mean = lambda img: img[fg].mean(0)  # noqa: E731
    to_b = np.abs(mean(end) - mean(ground_truth(photo_set, x, b))).sum()
    to_a = np.abs(mean(end) - mean(ground_truth(photo_set, x, a))).sum()
    assert to_b < to_a


def test_between_moves_only_the_skin_fields_linearly(photo_set):
    from histgan.data.synthetic import appearance_from_meta

    meta = load_meta(photo_set)
    a, b = (appearance_from_meta(meta["images"]["testB"][n]["appearance"], "photo") for n in _names(photo_set, "testB"))
    half = between(a, b, 0.5)
    for name in ("tone", "exposure", "redness"):
        assert getattr(half, name) == pytest.approx((getattr(a, name) + getattr(b, name)) / 2)
    assert half.albedo == pytest.approx(tuple((u + v) / 2 for u, v in zip(a.albedo, b.albedo)))
    for field in ("background", "bg_top", "skin_seed", "iso", "jpeg_quality"):
        assert getattr(half, field) == getattr(a, field)
    assert "tone" in SKIN_FIELDS and "background" not in SKIN_FIELDS


def test_bad_t_and_mixed_domains_are_refused(photo_set):
    from histgan.data.render import SkinAppearance
    from histgan.data.synthetic import appearance_from_meta

    meta = load_meta(photo_set)
    a = appearance_from_meta(meta["images"]["testB"][_names(photo_set, "testB")[0]]["appearance"], "photo")
    with pytest.raises(ValueError, match="t must lie in"):
        between(a, a, 1.5)
    plain = SkinAppearance(**{f: getattr(a, f) for f in SkinAppearance.__dataclass_fields__})
    with pytest.raises(ValueError, match="different domains"):
        between(a, plain, 0.5)
