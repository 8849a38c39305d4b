"""Training InfusionNet / AesFA (docs/training.md), apart from the networks it trains."""
