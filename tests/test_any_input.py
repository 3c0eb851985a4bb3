"""Any input: grayscale, 2/4/13 channels, small and non-square images, through every part of fvopt."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import fvopt
from fvopt.cli import main
from fvopt.dream import dream
from fvopt.errors import FvoptError
from fvopt.evaluate import score_images
from fvopt.io.images import load_array, save_images
from fvopt.objectives import parse_target
from fvopt.params import PARAMS, make_param
from fvopt.params.color import color_basis, estimate_basis
from fvopt.problem import Budget, Problem
from fvopt.run import run
from fvopt.strategies import make_strategy
from fvopt.strategies.base import search_space
from fvopt.transforms.fit import fit_transforms
from fvopt.transforms import ColorJitter, Compose, make_transforms

HERE = Path(__file__).resolve().parent
FACTORY = f"{HERE / 'test_own_models.py'}:small_cnn"
CANVASES = [((96, 160), 1), (28, 13), (32, 2), ((20, 36), 4), (64, 3)]
SPECS = [
    spec
    for entry in PARAMS.values()
    for spec in entry.examples
    if spec.split(":")[0] in ("pixel", "fft", "pyramid", "raw", "maco")
]


class TinyNet(nn.Module):
    """A CNN for any channel count that runs at any size."""

    def __init__(self, channels: int, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 8, 3, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.act2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.act2(self.conv2(self.act1(self.conv1(x))))).flatten(1))


@pytest.mark.parametrize("size, channels", CANVASES)
@pytest.mark.parametrize("spec", SPECS)
def test_every_parameterization_draws_any_channels_and_non_square_sizes(spec, size, channels):
    param = make_param(spec, size, channels=channels)
    z = param.init(2, torch.Generator().manual_seed(0)).requires_grad_(True)
    images = param(z)
    h, w = (size, size) if isinstance(size, int) else size
    assert images.shape == (2, channels, h, w) and param.channels == channels and param.image_hw == (h, w)
    assert images.min() >= 0 and images.max() <= 1
    images.mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    full = param.full
    assert torch.allclose(
        full(full.lift(z.detach()) if full is param else param.lift(z.detach())), images.detach(), atol=1e-5
    )


def test_decorrelation_is_lucid_for_rgb_identity_otherwise_or_estimated_from_references(tmp_path):
    assert make_param("fft", 32).color_source == "imagenet"
    assert make_param("fft", 32, channels=4).color_source == "identity"
    assert torch.equal(make_param("pyramid", 32, channels=4).color, torch.eye(4))
    # 4-channel references whose channels 0 and 1 co-vary: the estimate is the covariance's square root
    g = np.random.default_rng(0)
    base = g.random((2, 40, 40))
    for i in range(3):
        arr = np.stack([base[0], 0.8 * base[0] + 0.2 * g.random((40, 40)), base[1], g.random((40, 40))]) * 0.9
        np.save(tmp_path / f"ref{i}.npy", arr.astype(np.float32))
    basis = estimate_basis(tmp_path, 4)
    m = basis.matrix.double()
    pixels = np.concatenate([np.load(tmp_path / f"ref{i}.npy").reshape(4, -1).T for i in range(3)])
    cov = torch.tensor(np.cov(pixels, rowvar=False))
    product = m @ m.T
    assert torch.allclose(product / product[0, 0], cov / cov[0, 0], atol=1e-4)
    assert torch.allclose(m.norm(dim=0).max(), torch.tensor(1.0, dtype=torch.float64))
    assert basis.source.startswith(f"estimated from {tmp_path} (3 files)")
    param = make_param("fft", (24, 40), channels=4, color=basis)
    assert torch.allclose(param.color, basis.matrix) and param.color_source == basis.source
    with pytest.raises(FvoptError, match="must be 3x3"):
        make_param("fft", 32, channels=3, color=color_basis(basis, 4))
    with pytest.raises(FvoptError, match="does not exist"):
        color_basis(tmp_path / "nope", 4)


def test_transforms_are_scaled_below_128_px_and_drawn_per_channel():
    default = make_transforms("default")
    assert fit_transforms(default, (128, 200), 3) == default  # existing runs keep their draws
    small = fit_transforms(default, (28, 28), 1)
    assert (small.pad, small.jitter, small.jitter_after) == (3, 2, 1)  # 12, 8, 4 x 28/128, rounded
    colour = fit_transforms(make_transforms("color"), (64, 64), 13)
    jitter = colour.transforms[1]
    assert isinstance(jitter, ColorJitter) and jitter.channels == 13
    gain, offset = jitter.sample(torch.Generator().manual_seed(0))
    assert gain.shape == (13,) and jitter.apply(torch.rand(2, 13, 8, 8), (gain, offset)).shape == (2, 13, 8, 8)
    with pytest.raises(FvoptError, match="works on 1 or 3 channels.*color:G/O"):
        fit_transforms(make_transforms("colorjitter:0.2/0.2/0.2"), (64, 64), 13)
    x = torch.rand(2, 4, 40, 72)
    for spec in (
        "default",
        "lucent",
        "pad:4,jitter:4,scale:0.9-1.1,rotate:-5..5,noise:0.02",
        "crops:3@0.5-0.2",
        "affine:10/0.1/0.9-1.1,per-image",
    ):
        chain = fit_transforms(make_transforms(spec), (40, 72), 4)
        out = chain.apply(x, chain.sample(torch.Generator().manual_seed(1)))
        assert out.shape[1] == 4
        if spec.startswith("crops"):
            assert out.shape == (6, 4, 40, 72)  # crops keep the image's aspect


def test_images_of_other_channel_counts_are_a_channel_grid_and_raw_values(tmp_path):
    for channels in (2, 4, 13):
        images = torch.rand(2, channels, 12, 20)
        path = save_images(images, tmp_path / f"c{channels}.png")
        with Image.open(path) as img:
            assert img.mode == "L" and img.size == (channels * 22 - 2, 2 * 14 - 2)
        raw = np.load(tmp_path / f"c{channels}.npy")
        assert raw.shape == (2, channels, 12, 20) and np.allclose(raw, images.numpy())
        save_images(images[:1], tmp_path / f"one{channels}.png")  # one image's raw values read back exactly
        assert np.array_equal(load_array(tmp_path / f"one{channels}.npy", channels), images[0].numpy())
    gray = torch.rand(1, 1, 12, 20)
    save_images(gray, tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as img:
        assert img.mode == "L" and img.size == (20, 12)
    back = load_array(tmp_path / "g.png", 1)
    assert back.shape == (1, 12, 20) and np.abs(back - gray[0].numpy()).max() <= 0.5 / 255 + 1e-6
    with pytest.raises(FvoptError, match="is a picture.*13 channels.*npy"):
        load_array(tmp_path / "g.png", 13)


def _train(net: nn.Module, channels: int, steps: int, size: int = 28) -> nn.Module:
    """A few hundred Adam steps on synthetic data: class 0 horizontal stripes, 1 vertical stripes,
    2 noise, each drawn in a random half of the channels."""
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for _ in range(steps):
        labels = torch.randint(3, (32,), generator=g)
        phase = torch.rand(32, 1, 1, generator=g) * 6.28
        freq = 0.5 + torch.rand(32, 1, 1, generator=g)
        stripes = torch.where(labels[:, None, None] == 0, torch.sin(freq * yy + phase), torch.sin(freq * xx + phase))
        pattern = torch.where(labels[:, None, None] == 2, torch.rand(32, size, size, generator=g) * 2 - 1, stripes)
        mask = (torch.rand(32, channels, 1, 1, generator=g) < 0.5).float()
        x = 0.5 + 0.4 * pattern[:, None] * mask + 0.05 * torch.randn(32, channels, size, size, generator=g)
        loss = nn.functional.cross_entropy(net(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


FAMILIES = [("adam", {"lr": 0.05}), ("cmaes", {}), ("ng:DiagonalCMA", {}), ("hybrid:cmaes>adam", {}), ("lbfgs", {})]


GRADIENT_ONLY = ("adam", "lbfgs")


def _raise(model, target: str, optimizer: str, options: dict, steps: int, noise: bool = False) -> tuple[float, float]:
    """(value before, value after) of `target` under `optimizer`, scored untransformed. `noise`
    starts from uniform noise (a trained network's ReLUs can all be off on a flat gray image)."""
    objective = parse_target(target)
    strategy = make_strategy(optimizer, **options)
    if noise:  # zero-order parts search a 4x4 grid per channel (16 or 208 values)
        spec = "pixel:init=uniform" if optimizer in GRADIENT_ONLY else "pixel:k=4,init=uniform"
    else:
        spec = "fft:k=2" if not strategy.uses_gradients and model.channels > 3 else "fft"
    param = search_space(strategy, make_param(spec, model.input_size, channels=model.channels))
    problem = Problem(model, objective, param, make_transforms("none"), seed=0)
    z0 = problem.init()
    before = float(score_images(model, objective, problem.images(z0), draws=0)["value"][0])
    result = run(problem, strategy, Budget(steps=steps), z0=z0)
    assert result.images.shape == (1, model.channels, 28, 28)
    after = float(score_images(model, objective, result.images, draws=0)["value"][0])
    return before, after


@pytest.mark.parametrize("channels", [1, 13])
@pytest.mark.parametrize("optimizer, options", FAMILIES)
def test_every_strategy_family_raises_a_unit_of_a_random_network(channels, optimizer, options):
    torch.manual_seed(channels)
    model = fvopt.wrap(TinyNet(channels), input_size=28, mean=0.5, std=0.25)
    before, after = _raise(model, "channel:conv2:3", optimizer, options, steps=12)
    assert after > before + 1e-3, (before, after)


@pytest.mark.slow
@pytest.mark.parametrize("channels", [1, 13])
def test_every_strategy_family_raises_a_class_of_a_trained_network(channels):
    torch.manual_seed(0)
    net = _train(TinyNet(channels), channels, steps=150)
    model = fvopt.wrap(net, input_size=28)
    for optimizer, options in FAMILIES:
        before, after = _raise(model, "class:1", optimizer, options, steps=6, noise=True)
        assert after > before + 1e-2, (optimizer, before, after)


def test_objectives_and_regularizers_read_any_channel_count():
    model = fvopt.wrap(TinyNet(13), input_size=28)
    images = torch.rand(2, 13, 28, 40)
    for target in (
        "channel:conv2:3-0.01*tv",
        "neuron:conv2:1:2:3",
        "layer:conv2-1e-4*l2sum",
        "class:2+0.1*channel:conv1:0",
    ):
        values = score_images(model, parse_target(target), images, draws=2)
        assert values["value"].shape == (2,) and torch.isfinite(values["robust_value"]).all()


def test_deepdream_runs_on_a_grayscale_network():
    model = fvopt.wrap(TinyNet(1), input_size=28)
    photo = torch.rand(1, 1, 48, 64)
    result = dream(photo, model=model, layers="conv2", octaves=2, steps=2, tile=32, progress=False, device="cpu")
    assert result.image.shape == (1, 1, 48, 64) and not torch.equal(result.image, photo)
    with pytest.raises(FvoptError, match="the image has 3 channels and .* takes 1"):
        dream(torch.rand(1, 3, 48, 64), model=model, layers="conv2", octaves=1, steps=1, progress=False)
    with pytest.raises(FvoptError, match="no 13-channel sample photo"):
        dream(None, model=fvopt.wrap(TinyNet(13), input_size=28), layers="conv2", steps=1, progress=False)


def test_a_non_square_size_has_that_shape_everywhere(tmp_path, capsys):
    """--size 96x160: the trace, the PNG, the snapshots and the evaluator all see 96 x 160."""
    out, trace, snaps = tmp_path / "o.png", tmp_path / "t.json", tmp_path / "snaps"
    assert (
        main(
            [
                "viz",
                "--model",
                FACTORY,
                "--size",
                "96x160",
                "--target",
                "channel:conv2:3",
                "--steps",
                "3",
                "--quiet",
                "--out",
                str(out),
                "--trace",
                str(trace),
                "--snapshots",
                str(snaps),
                "--snapshot-every",
                "1",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    with Image.open(out) as img:
        assert img.size == (160, 96) and img.mode == "L"
    t = json.loads(trace.read_text())
    assert t["size"] == [96, 160] and t["final"]["robust_value"] is not None
    assert t["transforms_fit"].startswith("pixel amounts x0.75 for 96x160 px")
    shots = sorted(snaps.glob("*.png"))
    assert shots
    with Image.open(shots[-1]) as img:
        assert img.size == (160, 96)
    # the evaluator scores the saved picture at its own size
    model = fvopt.load_model(FACTORY)
    image = torch.from_numpy(load_array(out, 1))[None]
    scores = score_images(model, parse_target("channel:conv2:3"), image)
    assert abs(float(scores["value"][0]) - t["final"]["value"]) < 0.05 * abs(t["final"]["value"]) + 1e-3
    capsys.readouterr()
    with pytest.raises(SystemExit) as code:
        main(["viz", "--size", "96x0"])
    err = capsys.readouterr().err
    assert code.value.code == 2 and "size width=0 is not allowed" in err and err.count("\n") == 1


def test_an_image_size_below_the_networks_minimum_is_refused_per_side():
    model = fvopt.wrap(TinyNet(1), input_size=28)
    with pytest.raises(FvoptError, match="image size 12x40 px is too small .* at least 28 px a side"):
        fvopt.visualize(model, "channel:conv2:1", size=(12, 40), steps=1, device="cpu")
    with pytest.raises(FvoptError, match="draws 3-channel images and .* takes 1 channels"):
        Problem(model, parse_target("channel:conv2:1"), make_param("fft", 28), Compose(()))


def four_channel_net() -> nn.Module:
    """A factory for the command-line test below (this file is its FILE.py)."""
    torch.manual_seed(4)
    return TinyNet(4)


def test_the_cli_decorrelates_4_channels_from_reference_arrays_and_saves_a_grid_and_raw_values(tmp_path):
    g = np.random.default_rng(1)
    refs = tmp_path / "refs"
    refs.mkdir()
    for i in range(2):
        a = g.random((40, 40))
        np.save(
            refs / f"r{i}.npy",
            # channel 3 co-varies with channel 0 (exactly proportional would be a degenerate covariance, refused)
            np.stack(
                [a, 0.7 * a + 0.3 * g.random((40, 40)), g.random((40, 40)), a * 0.5 + 0.1 * g.random((40, 40))]
            ).astype(np.float32),
        )
    out, trace = tmp_path / "o.png", tmp_path / "t.json"
    assert (
        main(
            [
                "viz",
                "--model",
                f"{Path(__file__).resolve()}:four_channel_net",
                "--input-size",
                "32",
                "--size",
                "32x48",
                "--decorrelate",
                str(refs),
                "--param",
                "pyramid",
                "--target",
                "channel:conv2:2",
                "--steps",
                "2",
                "--quiet",
                "--out",
                str(out),
                "--trace",
                str(trace),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    t = json.loads(trace.read_text())
    assert t["decorrelation"] == f"estimated from {refs} (2 files)" and t["input"]["channels"] == 4
    raw = np.load(tmp_path / "o.npy")
    assert raw.shape == (1, 4, 32, 48) and raw.min() >= 0 and raw.max() <= 1
    with Image.open(out) as img:
        assert img.mode == "L" and img.size == (4 * 50 - 2, 32)
