import torch

from fvopt.transforms import ColorJitter, Compose, LucentTransforms, RandomRotate, make_transforms, standard_transforms


def test_a_draw_replays_identically_on_every_image():
    t = standard_transforms()
    g = torch.Generator().manual_seed(3)
    draw = t.sample(g)
    x = torch.rand(2, 3, 32, 32)
    y1 = t.apply(x, draw)
    y2 = t.apply(x[1:], draw)
    assert torch.allclose(y1[1:], y2)  # image 1 sees the same geometry alone or in a batch
    other = t.apply(x, t.sample(torch.Generator().manual_seed(4)))
    assert not torch.allclose(other, y1)  # and the draw, not the input alone, decides it


def test_default_set_has_lucents_draws_and_keeps_the_size():
    t = standard_transforms()
    names = [type(p).__name__ for p in t.transforms]
    assert names == ["Pad", "Jitter", "RandomScale", "RandomRotate", "Jitter"]
    assert (t.pad, t.jitter, t.jitter_after, min(t.scales), max(t.scales)) == (12, 8, 4, 0.9, 1.1)
    assert set(t.angles) == set(range(-10, 11)) and t.angles.count(0) == 6
    x = torch.rand(1, 3, 64, 64)
    assert {t.apply(x, t.sample(torch.Generator().manual_seed(s))).shape for s in range(10)} == {x.shape}


def test_lucent_set_changes_size_like_lucent():
    t = make_transforms("lucent")
    x = torch.rand(1, 3, 64, 64)
    sizes = {t.apply(x, t.sample(torch.Generator().manual_seed(s))).shape[-1] for s in range(20)}
    # 64 + 2*12 pad - 8 jitter = 80, scaled by 0.9..1.1, then 4 more jitter
    assert len(sizes) > 3 and min(sizes) >= round(0.9 * 80) - 4 and max(sizes) <= round(1.1 * 80) - 4


def test_transforms_are_differentiable_and_fill_with_gray():
    x = torch.full((1, 3, 16, 16), 0.5, requires_grad=True)
    y = RandomRotate(angles=(10.0,)).apply(x, 10.0)
    assert torch.allclose(y, torch.full_like(y, 0.5), atol=1e-6)
    y.sum().backward()
    assert x.grad.abs().sum() > 0
    t = Compose((ColorJitter(),))
    d = t.sample(torch.Generator().manual_seed(0))
    assert not torch.allclose(t.apply(x, d), x)


def test_fused_resampling_matches_the_chain_of_primitives():
    t = LucentTransforms(keep_size=False)
    chain = Compose(t.transforms)
    smooth = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8), size=(64, 64), mode="bilinear")
    crop_only = (None, (3, 5), 1.0, 0.0, (1, 2))
    assert torch.allclose(t.apply(smooth, crop_only), chain.apply(smooth, crop_only), atol=1e-6)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):  # with scale and rotation: one interpolation instead of two, so close, not equal
        d = t.sample(g)
        a, b = t.apply(smooth, d), chain.apply(smooth, d)
        assert a.shape == b.shape
        assert (a - b).abs()[..., 16:-16, 16:-16].max() < 0.05


def test_keep_size_window_is_centered_on_lucents_output():
    x = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8), size=(64, 64), mode="bilinear")
    d = (None, (4, 4), 1.0, 0.0, (2, 2))  # Lucent's output: 64 + 24 - 8 - 4 = 76 px
    full = LucentTransforms(keep_size=False).apply(x, d)
    same = LucentTransforms(keep_size=True).apply(x, d)
    assert torch.allclose(same, full[..., 6:70, 6:70], atol=1e-6)
