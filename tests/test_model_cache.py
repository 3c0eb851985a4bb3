"""One per-process model cache: the bench's cells, its judge and transfer networks, a rescore and an atlas
load each network once, through fvopt.models.cache."""

import torch

from fvopt.models import cache


def test_a_network_is_loaded_once_per_name_device_and_preprocessing(monkeypatch):
    loads = []

    def counted_load(name, device="cpu", **preprocessing):
        loads.append((name, device, preprocessing))
        return torch.nn.Identity()

    monkeypatch.setattr(cache, "_LOADED", {})
    monkeypatch.setattr(cache, "load_model", counted_load)
    first = cache.cached_model("lite0", "cpu")
    assert cache.cached_model("lite0", torch.device("cpu")) is first  # the device as a string or a torch.device
    assert cache.cached_model("lite0") is first  # the rescore's call: cpu unless told
    other = cache.cached_model("lite0", "cpu", {"mean": [0.5, 0.5, 0.5]})
    assert other is not first
    assert cache.cached_model("lite0", "cpu", {"mean": [0.5, 0.5, 0.5]}) is other
    assert loads == [("lite0", "cpu", {}), ("lite0", "cpu", {"mean": [0.5, 0.5, 0.5]})]
