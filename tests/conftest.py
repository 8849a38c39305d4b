"""Shared fixtures. Session-scoped objects are shared by many tests: never modify them in place
(copy, or build your own).

torch is imported inside the fixtures, not here: this file applies to every test, and the
runtime's tests must still collect on a torch-free machine (Jetson)."""
import pytest

VARIANTS = ("infusionnet", "aesfa")


@pytest.fixture(scope="session")
def seeded_models():
    """variant -> ``build_model(variant, seed=0)``, untrained, eval mode."""
    from infusionnet.models import build_model
    return {variant: build_model(variant, seed=0) for variant in VARIANTS}


@pytest.fixture(scope="session")
def official_states():
    """variant -> seeded random weights in the authors' layout (flat ``netE.*`` keys), built
    from architecture.md by tests/official_reference.py, independently of the project's model."""
    import official_reference
    return {variant: official_reference.random_state(variant, seed=20240) for variant in VARIANTS}


@pytest.fixture
def make_image():
    """``make_image(batch, height, width, seed)``: a reproducible ImageNet-normalized-like
    image batch (NCHW float32, roughly in [-2, 2.5])."""
    import torch

    def make(batch: int, height: int, width: int, seed: int = 0) -> "torch.Tensor":
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(batch, 3, height, width, generator=generator).clamp(-2.1, 2.6)
    return make
