import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def lite0():
    """The real pretrained EfficientNet-Lite0, loaded once for the whole suite."""
    from fvopt.models import load_model
    return load_model("lite0", device="cpu")


@pytest.fixture(scope="session")
def resnet18_random():
    from fvopt.models import load_model
    return load_model("torchvision:resnet18", weights="random")
