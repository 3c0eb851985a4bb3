"""Quality measures on real computations (fvopt.quality.judge): known cases are ordered correctly.

The reference is a folder of 200 images made by the test (scikit-image photos and synthetic
families, fvopt.quality.synthetic), shown at 96 px so that the passes stay cheap on a CPU.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fvopt.errors import FvoptError
from fvopt.quality import judge, reference_pass, reference_set
from fvopt.quality.synthetic import make_folder

SIDE = 96
LAYER = "blocks.5"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "quality-folder-200"
    if not root.exists():
        make_folder(root, n=200)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "quality-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def grating_unit(folder, cache, lite0):
    """The first unit of blocks.5 whose nine top images in the folder are all gratings: a unit with a
    clear preference there. Returns (unit, index of its top image, the reference set)."""
    ref = reference_set(folder)
    stats = reference_pass(lite0, ref, [LAYER], side=SIDE, progress=False, cache_folder=cache)[LAYER]
    family = np.array([s.split("/")[0] for s in ref.sources])
    for unit in range(stats.mean.shape[1]):
        acts = np.nan_to_num(stats.unit(unit).numpy(), nan=-np.inf)
        top = np.argsort(-acts)[:9]
        if (family[top] == "grating").all():
            return unit, int(top[0]), ref
    pytest.fail("no unit of blocks.5 prefers the gratings")


@pytest.fixture(scope="module")
def lite1():
    from fvopt.models import load_model

    return load_model("lite1")


def _judge(images, unit, ref, lite0, cache, **kw):
    return judge(
        images,
        f"channel:{LAYER}:{unit}",
        lite0,
        reference=ref,
        side=SIDE,
        cache_folder=cache,
        measures=kw.pop("measures", ["natural_ratio", "plausibility", "mis"]),
        **kw,
    )


@pytest.mark.slow
def test_a_units_top_image_beats_noise_and_a_raw_pixel_visualization(grating_unit, lite0, lite1, cache):
    from fvopt import visualize

    unit, top, ref = grating_unit
    raw = visualize(lite0, f"channel:{LAYER}:{unit}", "raw", "adam", steps=25, lr=0.05, size=SIDE, transforms="none")
    noise = torch.rand(1, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
    row = _judge(torch.cat([ref.load([top], SIDE), noise, raw.images]), unit, ref, lite0, cache, judge=lite1)
    assert row["reference"] == ref.describe() and row["judge"] == "lite1"
    per = {k: v for k, v in row["per_image"].items()}
    own, noisy, unregularized = 0, 1, 2
    assert 0.6 < per["natural_ratio_max"][own] <= 1.05  # robust activation (fixed transforms) of the unit's best image
    assert per["natural_ratio"][own] >= per["natural_ratio_max"][own]  # its 99th percentile is at most its max
    assert per["natural_ratio_informative"][own] is True
    for other in (noisy, unregularized):
        assert per["plausibility"][own] > per["plausibility"][other]
        assert per["mis"][own] > per["mis"][other]
    assert per["mis_informative"][own] is True and per["plausibility_informative"][own] is True
    assert per["mis_lo"][noisy] <= 0.5 <= per["mis_hi"][noisy]  # noise is at chance, within its interval
    assert per["natural_ratio_informative"][noisy] is False


@pytest.mark.slow
def test_row_is_flat_json_with_controls_intervals_and_reasons(grating_unit, lite0, lite1, cache):
    import json

    unit, top, ref = grating_unit
    images = torch.stack([ref.load([top], SIDE)[0], torch.rand(3, SIDE, SIDE)])
    row = _judge(images, unit, ref, lite0, cache, measures="default", judge=lite1)
    json.dumps(row, allow_nan=True)
    assert row["measures"] == ["natural_ratio", "plausibility", "mis", "spectral_slope", "diversity"]
    assert row["transfer_absent"].startswith("transfer is a class measure")
    for m in ("natural_ratio", "plausibility", "mis", "diversity", "spectral_distance"):
        assert {f"{m}_lo", f"{m}_hi", f"{m}_gray", f"{m}_noise", f"{m}_refimage", f"{m}_informative"} <= set(row)
        assert row[f"{m}_lo"] <= row[m] <= row[f"{m}_hi"]  # natural_ratio included (issue 26)
    assert abs(row["diversity_gray"]) < 1e-6  # identical gray images are not diverse (float32 cosines: 1 - 1.0000001)
    assert row["per_image"]["unit"] == [f"channel:{LAYER}:{unit}"] * 2
    assert row["mis_pairs"] >= 64


@pytest.mark.slow
def test_transfer_equals_the_probability_read_by_hand(lite0):
    from fvopt import visualize
    from fvopt.models import load_model

    vis = visualize(lite0, "class:8", steps=8, size=96)
    row = judge(vis.images, "class:8", lite0, measures=["transfer"], transfer=["lite1"])
    lite1 = load_model("lite1")
    with torch.no_grad():
        x = F.interpolate(vis.images, size=(240, 240), mode="bilinear", antialias=True, align_corners=False)
        probs = lite1(x).softmax(-1)[0]
    assert row["transfer"] == pytest.approx(float(probs[8]), abs=1e-6)
    assert row["transfer_prob_lite1"] == pytest.approx(float(probs[8]), abs=1e-6)
    assert row["transfer_rank_lite1"] == 1 + int((probs > probs[8]).sum())
    assert row["reference"] == "none" and row["transfer_networks"] == ["lite1"]
    assert row["transfer_gray"] is not None and row["transfer_refimage"] is None  # no reference, no such control


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target="channel:blocks.5:3", judge="lite0"), "judge lite0 is the optimized model"),
        (dict(target="channel:blocks.5:3", measures=["mis"]), "mis needs reference images"),
        (dict(target="channel:blocks.5:3", measures="transfer"), "transfer is a class measure"),
        (dict(target="class:8", measures=["diversity"]), "diversity needs a batch of 2 or more images"),
        (dict(target="channel:blocks.5:3", measures="mis,bogus"), "unknown measure 'bogus'"),
        (dict(target="neuron:blocks.5:3", measures=["natural_ratio"], reference="builtin"), "is a neuron target"),
        (dict(target="class:8", measures=["transfer"], transfer=["lite0"]), "transfer network lite0 is the optimized"),
    ],
)
def test_measures_that_cannot_be_computed_are_refused_in_one_line(kwargs, message, lite0):
    target = kwargs.pop("target")
    with pytest.raises(FvoptError) as err:
        judge(torch.rand(1, 3, 64, 64), target, lite0, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_default_set_records_why_a_measure_is_absent(lite0):
    row = judge(torch.rand(1, 3, 64, 64), "channel:blocks.5:3+channel:blocks.5:4", lite0)
    assert row["measures"] == ["spectral_slope"]
    assert "drives 2 units" in row["natural_ratio_absent"]
    assert "reference" in row["mis_absent"] or "units" in row["mis_absent"]
    assert row["diversity_absent"] == "diversity needs a batch of 2 or more images"


def test_value_8bit_scores_the_image_as_saved(lite0):
    from fvopt.evaluate import quantize_8bit, score_as_saved, score_images
    from fvopt.objectives import parse_target

    objective = parse_target("channel:blocks.3:5")
    images = torch.full((1, 3, 64, 64), 0.5) + 0.002 * torch.randn(1, 3, 64, 64)  # near gray: rounding matters
    saved = score_as_saved(lite0, objective, images, draws=2)
    exact = score_images(lite0, objective, quantize_8bit(images), draws=2)
    assert saved["value_8bit"] == pytest.approx(float(exact["value"][0]))
    assert saved["robust_8bit"] == pytest.approx(float(exact["robust_value"][0]))
    assert torch.equal(quantize_8bit(images) * 255, (quantize_8bit(images) * 255).round())


@pytest.mark.slow
def test_viz_puts_measures_and_8bit_scores_in_the_trace(lite0, tmp_path):
    from fvopt import visualize

    vis = visualize(lite0, "channel:blocks.3:5", steps=2, size=64)
    final, quality = vis.trace["final"], vis.trace["quality"]
    assert "value_8bit" in final and "robust_8bit" in final
    assert quality["measures"] == ["spectral_slope"] and quality["reference"] == "none"
    with pytest.raises(FvoptError, match="mis needs reference images"):
        visualize(lite0, "channel:blocks.3:5", steps=2, size=64, measures="mis")
    with pytest.raises(FvoptError, match="judge lite0 is the optimized model"):
        visualize("lite0", "channel:blocks.3:5", steps=2, size=64, judge="lite0")
    none = visualize(lite0, "channel:blocks.3:5", steps=1, size=64, measures="none")
    assert "quality" not in none.trace


def _rows_seen(model):
    """A list that grows by the batch size of every forward `model` makes."""
    seen: list[int] = []
    model.net.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    return seen


def test_the_evaluator_scores_a_repeated_picture_once_and_reads_it_for_every_copy():
    from fvopt.evaluate import score_images
    from fvopt.models import load_model
    from fvopt.objectives import parse_target
    from fvopt.transforms import make_transforms

    net = load_model("lite0")  # its own copy: the hook stays off the shared fixture
    seen = _rows_seen(net)
    a, b = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    images = torch.stack([a, b, a, a, b])
    objective = parse_target("channel:blocks.2:0-4")
    score_images(net, objective, images[:1], draws=0)  # the layer's layout is probed once, with its own passes
    seen.clear()
    shared = score_images(net, objective, images)
    assert seen == [2] * 17  # two distinct pictures, untransformed and under the 16 fixed draws
    for i in range(5):  # each copy gets its own unit's value, as a batch of distinct pictures would
        alone = score_images(net, parse_target(f"channel:blocks.2:{i}"), images[i : i + 1])
        for key in ("value", "robust_value"):
            assert float(shared[key][i]) == pytest.approx(float(alone[key][0]), rel=1e-5, abs=1e-6), (i, key)
    # noise drawn per image makes the copies different pictures: all go through the network, no sharing
    seen.clear()
    noisy = score_images(net, objective, images, transforms=make_transforms("default,noise:0.05"))
    assert seen == [2] + [5] * 16
    assert float(noisy["robust_value"][0]) != float(noisy["robust_value"][2])


@pytest.mark.slow
def test_controls_share_pictures_and_each_reference_pick_is_a_uniform_draw_from_its_units_pool(
    grating_unit, lite0, cache
):
    from fvopt.quality.score import _controls
    from fvopt.quality.units import Unit

    _, _, ref = grating_unit
    stats = reference_pass(lite0, ref, [LAYER], side=SIDE, progress=False, cache_folder=cache)[LAYER]
    units = Unit("channel", LAYER, tuple(range(12)))
    images = torch.zeros(12, 3, SIDE, SIDE)
    valid = np.flatnonzero(stats.valid.numpy())
    k = max(1, len(valid) // 10)

    def pool(u: int) -> set[int]:
        ranked = valid[np.argsort(stats.unit(u).numpy()[valid])]
        return set(ranked[k:-k].tolist())

    picked = {u: [] for u in range(12)}
    originals = ref.load  # the picks, as indices, without decoding 12 images per seed
    for seed in range(150):
        ref.load = lambda picks, side: picked.__setitem__("last", list(picks)) or torch.zeros(len(picks), 3, side, side)
        try:
            out = _controls(images, ref, stats, units, seed)
        finally:
            ref.load = originals
        assert (out["noise"] == out["noise"][:1]).all() and out["noise"].std() > 0.2  # one noise picture, shared
        assert len(set(picked["last"])) < 12  # the units share reference pictures: fewer to score
        for u, p in enumerate(picked["last"]):
            assert p in pool(u)  # never among the unit's top or bottom tenth
            picked[u].append(p)
    # over seeds, unit 0's picks spread over its whole pool (a uniform draw: 150 draws from 160 images
    # cover about 97 of them; a pick stuck on a few images would not)
    assert len(set(picked[0])) > 70


def test_visualize_hands_judge_its_robust_values_only_when_the_target_is_the_bare_unit():
    """natural_ratio reuses the evaluator's robust values (17 passes fewer) where they are the unit's own."""
    from fvopt.objectives import parse_target
    from fvopt.viz import _bare_unit_robust

    final = {"per_image": {"robust_value": [1.5, 2.5]}}
    assert _bare_unit_robust(parse_target("channel:blocks.3:5,6"), final) == [1.5, 2.5]
    assert _bare_unit_robust(parse_target("class:8,9"), final) == [1.5, 2.5]
    for other in ("2*channel:blocks.3:5,6", "channel:blocks.3:5,6-0.1*tv", "channel:blocks.3:5+channel:blocks.3:6"):
        assert _bare_unit_robust(parse_target(other), final) is None, other  # not the unit's activation alone
    assert _bare_unit_robust(parse_target("channel:blocks.3:5"), {"value": 1.0}) is None  # interrupted: none


def test_judge_features_of_a_repeated_picture_are_computed_once_and_equal_each_copys():
    from fvopt.models import load_model
    from fvopt.quality.features import penultimate

    net = load_model("lite0")  # its own copy: the hook stays off the shared fixture
    seen = _rows_seen(net)
    a, b = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    shared = penultimate(net, torch.stack([a, b, a, a]), side=64)
    assert seen == [2]
    alone = penultimate(net, torch.stack([a, b]), side=64)
    torch.testing.assert_close(shared, alone[[0, 1, 0, 0]])
