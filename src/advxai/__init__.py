"""advxai: adversarial ground truth for testing explainers (Hoedt et al. 2022/23)."""

__version__ = "0.1.0"
