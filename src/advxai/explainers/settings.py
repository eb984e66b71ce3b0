"""The explainers' settings: one type and one name per concept, from config key to engine.

``image.explain`` and ``audio.explain`` in the config, the rules' params, the stages, the engine
and the public call :func:`advxai.evaluate` all use :class:`ExplainerSettings` with the config's
key names. A job receives only the keys its explainers read (so that changing another key reruns
none of its jobs); the engine asks for a key when an explainer needs it, and a key that is not set
fails there with its name (:meth:`ExplainerSettings.require`). The paper's values are
:meth:`ExplainerSettings.paper`, from :mod:`advxai.constants`.

:class:`LimeForm` is what differs between the domains' LIME and is not a config key: the image
domain follows captum's Lime (docs/method.md §7), the audio domain audioLIME (docs/method.md §3).

No torch here: the workflow builds these while Snakemake parses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from .. import constants
from ..names import ENSEMBLES, GRADIENT_METHODS, LIME_FAMILY

DOMAINS = ("image", "audio")


@dataclass(frozen=True)
class ExplainerSettings:
    """``<domain>.explain``: LIME's samples and kernel width, the NoiseTunnel copies and noise, IG's points.

    A field left ``None`` is a key the job did not receive; :meth:`require` names it if an
    explainer needs it.
    """

    lime_samples: int | None = None
    lime_kernel_width: float | None = None
    noise_samples: int | None = None  # NoiseTunnel J (SG, SG², VG)
    noise_std: float | None = None  # absolute, in the model's input units (decision 9)
    ig_steps: int | None = None  # Gauss-Legendre points (decision 9)
    unguided_functional_relu: bool | None = None  # authors_code: GBP guides nn.ReLU modules only (decision 22)

    @classmethod
    def paper(cls, domain: str = "image", **changes: Any) -> ExplainerSettings:
        """The paper's settings of ``domain`` (:mod:`advxai.constants`), with ``changes`` applied."""
        if domain not in DOMAINS:
            raise ValueError(f"domain must be one of {list(DOMAINS)}, got {domain!r}")
        lime_samples = constants.IMAGE_LIME_SAMPLES if domain == "image" else constants.AUDIO_LIME_SAMPLES
        settings = cls(
            lime_samples=lime_samples,
            lime_kernel_width=constants.LIME_KERNEL_WIDTH,
            noise_samples=constants.NOISE_SAMPLES,
            noise_std=constants.NOISE_STD,
            ig_steps=constants.IG_STEPS,
        )
        return replace(settings, **changes)

    def require(self, key: str, section: str = "explain") -> Any:
        """The value of ``key``; an error naming the config key where it was not given."""
        value = getattr(self, key)
        if value is None:
            raise ValueError(
                f"missing key '{section}.{key}': an explainer needs it (ExplainerSettings.paper() gives the paper's)"
            )
        return value

    @staticmethod
    def keys_for(explainers: Sequence[str]) -> list[str]:
        """The keys ``explainers`` read: LIME its samples and kernel width, ensembles their noise, IG its steps."""
        methods = {name.partition("-")[0] for name in explainers}  # "ig-sg" -> method "ig", ensemble "sg"
        keys = ["lime_samples", "lime_kernel_width"] if LIME_FAMILY in methods else []
        if any(name.partition("-")[2] in ENSEMBLES for name in explainers):
            keys += ["noise_samples", "noise_std"]
        if GRADIENT_METHODS["ig"] in methods:
            keys.append("ig_steps")
        return keys

    def only(self, explainers: Sequence[str]) -> ExplainerSettings:
        """The settings ``explainers`` read, the others unset (what a job of these explainers records)."""
        keys = set(self.keys_for(explainers))
        if GRADIENT_METHODS["gbp"] in {name.partition("-")[0] for name in explainers}:
            keys.add("unguided_functional_relu")
        return ExplainerSettings(**{key: value for key, value in asdict(self).items() if key in keys})

    def as_params(self) -> dict[str, Any]:
        """The keys that are set, as a job records them in its provenance."""
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class LimeForm:
    """How a domain's LIME samples, weighs and fits (docs/method.md §3 and §7); not a config key."""

    kernel: str  # "input_cosine": cosine distance of the inputs; "binary_cosine": of the binary vectors
    surrogate: str  # "ols" with intercept, or "ridge" (alpha 1)
    baseline: float | str  # occlusion value, or "mean" of the item
    include_unperturbed: bool  # sample 0 all ones


IMAGE_LIME = LimeForm(kernel="input_cosine", surrogate="ols", baseline=0.0, include_unperturbed=False)
"""captum's Lime as the authors called it (decision 7)."""

AUDIO_LIME = LimeForm(kernel="binary_cosine", surrogate="ridge", baseline="mean", include_unperturbed=True)
"""audioLIME (decision 7)."""
