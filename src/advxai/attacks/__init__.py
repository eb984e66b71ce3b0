"""Adversarial attacks: targeted PGD for images, C&W-style attack for audio."""
