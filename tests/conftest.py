"""Shared fixtures. Session-scoped objects are shared by many tests: never modify them in place
(copy, or build your own)."""
import pytest
import torch

import official_reference


@pytest.fixture(scope="session")
def seeded_models():
    """variant -> ``build_model(variant, seed=0)``, untrained, eval mode."""
    from infusionnet.models import build_model
    return {variant: build_model(variant, seed=0) for variant in official_reference.VARIANTS}


@pytest.fixture(scope="session")
def official_states():
    """variant -> seeded random weights in the authors' layout (flat ``netE.*`` keys), built
    from architecture.md by tests/official_reference.py, independently of the project's model."""
    return {variant: official_reference.random_state(variant, seed=20240)
            for variant in official_reference.VARIANTS}


@pytest.fixture
def make_image():
    """``make_image(batch, height, width, seed)``: a reproducible ImageNet-normalized-like
    image batch (NCHW float32, roughly in [-2, 2.5])."""
    def make(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(batch, 3, height, width, generator=generator).clamp(-2.1, 2.6)
    return make
