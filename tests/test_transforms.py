import torch

from fvopt.transforms import ColorJitter, Compose, RandomRotate, standard_transforms


def test_a_draw_replays_identically_on_every_image():
    t = standard_transforms()
    g = torch.Generator().manual_seed(3)
    draw = t.sample(g)
    x = torch.rand(2, 3, 32, 32)
    y1 = t.apply(x, draw)
    y2 = t.apply(x[1:], draw)
    assert torch.allclose(y1[1:], y2)
    assert torch.allclose(t.apply(x, draw), y1)


def test_default_set_is_lucents_and_changes_size_like_it():
    t = standard_transforms()
    names = [type(p).__name__ for p in t.transforms]
    assert names == ["Pad", "Jitter", "RandomScale", "RandomRotate", "Jitter"]
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
