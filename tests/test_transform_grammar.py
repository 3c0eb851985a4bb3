"""The transform grammar round-trips; its parts do what their torchvision or MaCo counterparts do;
crops average the objective over views and count every crop as a pass; the render size shows the
network what Lucent shows it (a 128 px image at 224)."""

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from fvopt.cli import main
from fvopt.errors import FvoptError
from fvopt.objectives import parse_target
from fvopt.params import make_param
from fvopt.problem import Budget, Problem
from fvopt.run import run
from fvopt.strategies import make_strategy
from fvopt.transforms.grammar import parse_transforms
from fvopt.transforms import Affine, Crops, Zoom, describe_transforms, make_transforms, views_of

CHAINS = [
    "pad:12,jitter:8,scale:0.9-1.1,rotate:-10..10,jitter:4,noise:0.02,crops:6@0.5-0.05",
    "default,noise:0.02,per-image",
    "affine:10/0.1/0.9-1.1,colorjitter:0.2/0.2/0.2",
    "color:0.05/0.05,unoise:0.08",
    "default",
    "lucent",
    "none",
    "jitter:4,crops:3@0.3-0.1,per-image",
]


@pytest.mark.parametrize("text", CHAINS)
def test_the_grammar_round_trips(text):
    chain = make_transforms(text)
    assert describe_transforms(chain) == text
    assert make_transforms(describe_transforms(chain)) == chain


@pytest.mark.parametrize("text", CHAINS)
def test_every_chain_is_differentiable_and_replays_its_draw(text):
    chain = make_transforms(text)
    x = torch.rand(2, 3, 48, 48, requires_grad=True)
    draw = chain.sample(torch.Generator().manual_seed(1))
    out = chain.apply(x, draw)
    assert out.shape[0] == 2 * views_of(chain)
    assert torch.equal(out, chain.apply(x, draw))  # one draw, one result: common random numbers
    out.sum().backward()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "bad, says",
    [
        ("pad:-1", "outside 0..4096"),
        ("scale:1.1-0.9", "runs backwards"),
        ("rotate:x", "not a range"),
        ("crops:6", "crops:N@A-B"),
        ("noise:nan", "outside"),
        ("blur:3", "unknown part"),
        ("lucent,per-image", "per-image draws need"),
        ("affine:10/0.1", "needs 3 values"),
        ("crops:2@0.5-0.1,crops:2@0.5-0.1", "one crops part"),
    ],
)
def test_bad_chains_are_refused_naming_the_part(bad, says):
    with pytest.raises(FvoptError, match="transform") as err:
        parse_transforms(bad)
    assert says in str(err.value)


def test_affine_and_zoom_match_torchvision_geometry():
    x = torch.rand(1, 3, 40, 40)
    ours = Affine().apply(x, (12.0, 0.1, -0.05, 1.1))
    theirs = TF.affine(
        x,
        angle=12.0,
        translate=[4.0, -2.0],
        scale=1.1,
        shear=[0.0, 0.0],
        interpolation=TF.InterpolationMode.BILINEAR,
        fill=[0.5],
    )
    inner = (..., slice(8, 32), slice(8, 32))  # away from the border, where the two fill rules differ
    assert torch.allclose(ours[inner], theirs[inner], atol=0.02)
    zoomed = Zoom(0.9, 1.1).apply(x, 0.9)
    theirs = TF.affine(
        x,
        angle=0.0,
        translate=[0.0, 0.0],
        scale=0.9,
        shear=[0.0, 0.0],
        interpolation=TF.InterpolationMode.BILINEAR,
        fill=[0.5],
    )
    assert torch.allclose(zoomed[inner], theirs[inner], atol=0.02)


def test_crops_are_the_boxes_they_say_and_inside_the_image():
    crops = Crops(4, 0.25, 0.25, size=8)
    x = torch.arange(32 * 32, dtype=torch.float32).view(1, 1, 32, 32).expand(2, 3, 32, 32).clone()
    sides, centers = crops.sample(torch.Generator().manual_seed(0))
    assert torch.all(centers - sides[:, None] / 2 >= 0) and torch.all(centers + sides[:, None] / 2 <= 1)
    out = crops.apply(x, (sides, centers))
    assert out.shape == (8, 3, 8, 8)
    # view by view: outputs 0 and 1 are the first crop of images 0 and 1 (identical images here)
    assert torch.equal(out[0], out[1])
    cx, cy = (centers[0] * 32).tolist()  # a quarter-side crop resized 8 -> 8 px: pixel-exact centers
    assert out[0, 0].mean().item() == pytest.approx(
        x[0, 0, int(cy) - 4 : int(cy) + 4, int(cx) - 4 : int(cx) + 4].mean().item(), abs=40
    )


def test_crops_average_the_objective_over_views_and_count_each_crop(lite0):
    target = parse_target("channel:blocks.3:5")
    chain = make_transforms("crops:3@0.6-0.4")
    problem = Problem(lite0, target, make_param("fft", 96), chain, render=64)
    z = problem.init()
    with problem.fixed_draw() as draw:
        value = problem.evaluate(z)
    images = problem.images(z)
    views = problem.transforms.apply(images, draw)
    assert views.shape == (3, 3, 64, 64)  # crops are made at the render size directly
    with torch.no_grad():
        from fvopt.models.hooks import capture
        from fvopt.objectives import Activations

        with capture(lite0, target.layers) as cap:
            per_view = target(
                Activations(cap.run(views), images.repeat(3, 1, 1, 1), torch.zeros(3, dtype=torch.long), 1, cap.layouts)
            )
    assert value.item() == pytest.approx(per_view.mean().item(), rel=1e-5)
    assert problem.meter.forwards == 3
    result = run(problem, make_strategy("adam"), Budget(steps=2))
    assert (result.forwards, result.backwards) == (6, 6)
    with pytest.raises(FvoptError, match="spends 3 forwards and 3 backwards"):  # 3 crops a step: refused up front
        run(problem, make_strategy("sgd"), Budget(forwards=2))


def test_lucent_render_size_shows_the_network_224_for_a_128_image(lite0):
    import fvopt

    fvopt.visualize(lite0, "class:8", size=128, render="lucent", steps=1, transforms="lucent")  # layout probes done
    seen = []
    handle = lite0.net.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape[-2:])))
    try:
        vis = fvopt.visualize(lite0, "class:8", size=128, render="lucent", steps=1, transforms="lucent")
        assert vis.images.shape[-2:] == (128, 128) and vis.trace["render"] == 224
        assert seen and all(shape == (224, 224) for shape in seen)  # the run and the evaluator alike
        seen.clear()
        fvopt.visualize(lite0, "class:8", size=240, render="lucent", steps=1, transforms="none")
        # Lucent upsamples only smaller images: the step and the evaluator's 17 passes see 240 px
        assert seen.count((240, 240)) >= 18  # Lucent upsamples only smaller images
    finally:
        handle.remove()


def test_per_image_draws_differ_between_images_and_replay():
    chain = make_transforms("rotate:-30..30,per-image")
    x = torch.rand(1, 3, 32, 32).expand(2, 3, 32, 32)
    draw = chain.sample(torch.Generator().manual_seed(3))
    out = chain.apply(x, draw)
    assert not torch.allclose(out[0], out[1])
    assert torch.equal(out, chain.apply(x, draw))
    shared = make_transforms("rotate:-30..30")
    same = shared.apply(x, shared.sample(torch.Generator().manual_seed(3)))
    assert torch.equal(same[0], same[1])


def test_cli_refuses_bad_transforms_and_render_sizes_before_loading(capsys):
    for argv, says in (
        (["viz", "--transforms", "jitter:0"], "outside 1..4096"),
        (["viz", "--render-size", "big"], "render-size"),
        (["viz", "--render-size", "0"], "render-size"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2 and says in capsys.readouterr().err


def test_render_size_and_tile_do_not_combine(lite0):
    with pytest.raises(FvoptError, match="render size and tile"):
        Problem(
            lite0,
            parse_target("channel:blocks.3:5"),
            make_param("fft", 128),
            make_transforms("none"),
            tile=64,
            render=224,
        )


def test_a_bench_spec_takes_a_chain_and_a_render_size(tmp_path):
    from fvopt.bench.spec import load_spec
    from fvopt.bench.store import Store

    spec = tmp_path / "s.toml"
    spec.write_text(
        '[bench]\nname = "r"\nsize = 64\ntargets = ["channel:blocks.3:5"]\nrender = "lucent"\n'
        'transforms = "jitter:4,noise:0.02,crops:2@0.6-0.4"\nbudget = { steps = 1 }\n\n'
        '[[strategies]]\nname = "adam"\n'
    )
    (cell,) = load_spec(spec).cells
    assert cell.render == "lucent" and cell.transforms == "jitter:4,noise:0.02,crops:2@0.6-0.4"
    assert main(["bench", "run", str(spec), "--db", str(tmp_path / "r.sqlite"), "--quiet"]) == 0
    store = Store(tmp_path / "r.sqlite", readonly=True)
    (row,) = store.rows()
    store.close()
    assert row["extra"]["render"] == 224 and (row["forwards"], row["backwards"]) == (2, 2)  # 2 crops, 1 step
    spec.write_text(spec.read_text().replace('render = "lucent"', "render = 0"))
    with pytest.raises(FvoptError, match="bench.render"):
        load_spec(spec)
