"""Typed settings of the stages, built from a rule's ``params`` (workflow/rules/common.smk builds them).

Each dataclass names the config section its values come from. :meth:`StageSettings.from_params`
takes exactly the keys it needs and fails with the missing key's config name; there are no
silent defaults. :meth:`StageSettings.as_params` is what the stage records as provenance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar, TypeVar

from ..constants import PGD_STEPS, RECT_GRID, SLIC_COMPACTNESS, SLIC_SEGMENTS, SLIC_SIGMA
from ..explainers.settings import ExplainerSettings
from ..names import FAMILIES, GRADIENT_METHODS, LIME_FAMILY

Settings = TypeVar("Settings", bound="StageSettings")


def missing_key(section: str, key: str) -> ValueError:
    return ValueError(f"params: missing key '{section}.{key}' (the rule's params must carry it; see workflow/rules/common.smk)")


AUTHORS_CODE = "authors_code"
"""The config section that switches on the authors' code's behaviour (docs/decisions.md, decision 35)."""


def take(params: Mapping[str, Any], section: str, keys: Sequence[str]) -> dict[str, Any]:
    """``keys`` of ``params``; the first missing one raises :func:`missing_key`."""
    for key in keys:
        if key not in params:
            raise missing_key(section, key)
    return {key: params[key] for key in keys}


@dataclass(frozen=True)
class StageSettings:
    """Base of the settings: every field is a required key of the rule's params."""

    SECTION: ClassVar[str]

    @classmethod
    def required(cls, params: Mapping[str, Any]) -> list[str]:
        """The keys these params must carry (every field; subclasses with variants narrow it)."""
        return [field.name for field in fields(cls)]

    @classmethod
    def from_params(cls: type[Settings], params: Mapping[str, Any]) -> Settings:
        return cls(**take(params, cls.SECTION, cls.required(params)))

    def as_params(self) -> dict[str, Any]:
        """The settings as provenance (unset variant fields left out)."""
        return {key: value for key, value in asdict(self).items() if value is not None}


# ------------------------------------------------------------------------------------ images
@dataclass(frozen=True)
class ModelSpec(StageSettings):
    """What identifies a model's weights and preprocessing (``image.models.<label>``), and the
    arithmetic its passes run in (``image.arithmetic``)."""

    SECTION = "image.models.<label>"
    architecture: str
    weights: str | None
    resize: int
    crop: int
    arithmetic: str  # image.arithmetic: exact, tf32 or bf16 (docs/exactness.md)
    # The weights file the job reads (the rule's `weights` input, resources/weights/): where the
    # weights are, not what they are, so no param and no provenance (the outputs record its sha256).
    weights_file: str | None = None

    @classmethod
    def required(cls, params: Mapping[str, Any]) -> list[str]:
        return [name for name in super().required(params) if name != "weights_file"]

    def as_params(self) -> dict[str, Any]:
        return {key: value for key, value in super().as_params().items() if key != "weights_file"}

    def gpu_footprint_gib(self, batch_size: int | str) -> float:
        """GPU memory of a job of this model with ``batch_size`` (the share of a GPU it takes)."""
        from ..gpu_resources import image_footprint_gib

        return image_footprint_gib(batch_size, self.crop)

    def reading(self, weights_file: Any) -> ModelSpec:
        """The spec with the weights file of the job's input (empty where the model has none)."""
        return replace(self, weights_file=str(weights_file) if weights_file else None)


@dataclass(frozen=True)
class ShardSettings(StageSettings):
    """Which manifest rows a shard holds and how they are resized and cropped."""

    SECTION = "image"
    dataset: str
    max_images: int | None
    shard_size: int
    shard: int
    resize: int
    crop: int


@dataclass(frozen=True)
class PgdSettings(StageSettings):
    """Targeted PGD of one model (docs/method.md §5.3); :func:`advxai.evaluate` takes it as ``advxai.PGD``.

    ``epsilon`` and ``step_size`` are in the model's input units (normalised). The defaults serve
    the Python call only: a rule's params must carry every key. ``seed`` ``None``: the call's seed.
    """

    SECTION = "image.pgd"
    epsilon: float
    step_size: float
    steps: int = PGD_STEPS
    early_stop: bool = False  # decision 3: the authors always ran every step
    seed: int | None = None


@dataclass(frozen=True)
class SubsetSettings(StageSettings):
    """The evaluation subsets of one model (docs/decisions.md, decision 10)."""

    SECTION = "image.subset"
    fraction: float
    localised_fraction: float
    seed: int
    model: str


@dataclass(frozen=True)
class SegmentationSettings(StageSettings):
    """4×4 rectangles (``grid``) or SLIC (``n_segments``, ``compactness``, ``sigma``)."""

    SECTION = "image.<rect|slic>"
    method: str
    grid: int | None = None
    n_segments: int | None = None
    compactness: float | None = None
    sigma: float | None = None

    @classmethod
    def required(cls, params: Mapping[str, Any]) -> list[str]:
        method = take(params, cls.SECTION, ["method"])["method"]
        if method not in ("rect", "slic"):
            raise ValueError(f"params: segmentation method '{method}' is neither rect nor slic")
        return ["method", "grid"] if method == "rect" else ["method", "n_segments", "compactness", "sigma"]

    @classmethod
    def paper(cls, method: str) -> SegmentationSettings:
        """The paper's rectangles or SLIC (:mod:`advxai.constants`)."""
        if method == "rect":
            return cls(method="rect", grid=RECT_GRID)
        if method == "slic":
            return cls(method="slic", n_segments=SLIC_SEGMENTS, compactness=SLIC_COMPACTNESS, sigma=SLIC_SIGMA)
        raise ValueError(f"segmentation {method!r} is neither 'rect' nor 'slic' (or pass segment id maps)")


def explainer_settings(params: Mapping[str, Any], explainers: Sequence[str]) -> ExplainerSettings:
    """The settings ``explainers`` use: their ``image.explain`` keys and, for GBP, ``authors_code``'s
    ``unguided_functional_relu`` (decision 22)."""
    values = take(params, "image.explain", ExplainerSettings.keys_for(explainers))
    if GRADIENT_METHODS["gbp"] in {name.partition("-")[0] for name in explainers}:
        values.update(take(params, AUTHORS_CODE, ["unguided_functional_relu"]))
    return ExplainerSettings(**values)


def _is_lime(family: str) -> bool:
    """LIME runs as one job per segmentation: ``lime_<segmentation>``."""
    return family.startswith(f"{LIME_FAMILY}_")


@dataclass(frozen=True)
class ExplainFamilySettings(StageSettings):
    """One explanation job: a gradient family, LIME on one segmentation, or the extra explainers."""

    SECTION = "image.explain"
    family: str
    explainers: tuple[str, ...]
    seed: int
    keep_attributions: bool
    segmentations: tuple[str, ...]
    explainer: ExplainerSettings
    extra: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ExplainFamilySettings:
        base = take(params, cls.SECTION, ["family", "explainers", "seed", "keep_attributions", "segmentations"])
        family = base["family"]
        if _is_lime(family):
            explainers = [LIME_FAMILY]
        elif family == "extra":
            explainers = []
        elif family in FAMILIES:
            explainers = list(base["explainers"])
        else:
            raise ValueError(f"params: unknown explanation family '{family}'")
        extra = tuple(take(params, "image.extra_explainers", ["extra"])["extra"]) if family == "extra" else ()
        explainer = explainer_settings(params, explainers)
        return cls(family=family, explainers=tuple(base["explainers"]), seed=base["seed"], keep_attributions=base["keep_attributions"],
                   segmentations=tuple(base["segmentations"]), explainer=explainer, extra=extra)

    @property
    def forwards_only(self) -> bool:
        """Whether the job's passes are forwards only (LIME), not input gradients."""
        return _is_lime(self.family)

    def as_params(self) -> dict[str, Any]:
        params = {key: value for key, value in super().as_params().items() if key not in ("explainer", "extra")}
        return {**params, **self.explainer.as_params(), **({"extra": list(self.extra)} if self.family == "extra" else {})}


@dataclass(frozen=True)
class LabelflipSettings(StageSettings):
    """Label flips of one segmentation: the fixed k, the k sweep and the fraction sweep."""

    SECTION = "image.labelflip"
    segmentation: str
    k: int
    ks: tuple[int, ...]
    fractions: tuple[float, ...]
    empty_fraction_selects_all: bool = False  # authors_code: ⌊p · n⌋ = 0 adds back every segment

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LabelflipSettings:
        return cls(**take(params, cls.SECTION, ["segmentation", "k", "ks", "fractions"]),
                   **take(params, AUTHORS_CODE, ["empty_fraction_selects_all"]))


@dataclass(frozen=True)
class LocalisedSettings(StageSettings):
    """The localised experiment of one segmentation and the explainers it re-runs."""

    SECTION = "image.localised"
    segmentation: str
    ks: tuple[int, ...]
    explainers: tuple[str, ...]
    extra: tuple[Mapping[str, Any], ...]
    seed: int
    explainer: ExplainerSettings

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LocalisedSettings:
        base = take(params, cls.SECTION, ["segmentation", "ks", "explainers", "extra", "seed"])
        explainer = explainer_settings(params, base["explainers"])
        return cls(segmentation=base["segmentation"], ks=tuple(base["ks"]), explainers=tuple(base["explainers"]),
                   extra=tuple(base["extra"]), seed=base["seed"], explainer=explainer)

    @property
    def makes_gradients(self) -> bool:
        """Whether any re-run explainer takes input gradients (every one but LIME; extras may)."""
        return bool(self.extra) or any(name != LIME_FAMILY for name in self.explainers)

    def as_params(self) -> dict[str, Any]:
        params = {key: value for key, value in super().as_params().items() if key != "explainer"}
        return {**params, "extra": list(self.extra), **self.explainer.as_params()}


@dataclass(frozen=True)
class RefineSettings(StageSettings):
    """The refine stage of one segmentation: the top-k magnitude segments of each adversary (docs/method.md §8.3)."""

    SECTION = "image.localised"
    segmentation: str
    ks: tuple[int, ...]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RefineSettings:
        base = take(params, cls.SECTION, ["segmentation", "ks"])
        return cls(segmentation=base["segmentation"], ks=tuple(base["ks"]))

    def as_params(self) -> dict[str, Any]:
        return {"segmentation": self.segmentation, "ks": list(self.ks)}


@dataclass(frozen=True)
class ExamplesSettings(StageSettings):
    """The example images of the method figures (``image.examples``) and how they are explained."""

    SECTION = "image.examples"
    count: int
    ids: tuple[str, ...] | None
    seed: int
    segmentations: tuple[str, ...]
    ks: tuple[int, ...]
    explainers: tuple[str, ...]
    extra: tuple[Mapping[str, Any], ...]
    explainer: ExplainerSettings

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ExamplesSettings:
        base = take(params, cls.SECTION, ["count", "ids", "seed", "segmentations", "ks", "explainers", "extra"])
        explainer = ExplainerSettings(**take(params, "image.explain", ExplainerSettings.keys_for(base["explainers"])))
        return cls(count=base["count"], ids=None if base["ids"] is None else tuple(base["ids"]), seed=base["seed"],
                   segmentations=tuple(base["segmentations"]), ks=tuple(base["ks"]),
                   explainers=tuple(base["explainers"]),
                   extra=tuple(base["extra"]), explainer=explainer)

    def as_params(self) -> dict[str, Any]:
        params = {key: value for key, value in asdict(self).items() if key != "explainer"}
        return {**params, "extra": list(self.extra), **self.explainer.as_params()}


# ------------------------------------------------------------------------------------ audio
@dataclass(frozen=True)
class CorpusSettings(StageSettings):
    SECTION = "audio.synthetic"
    songs: Mapping[str, int]
    seconds: float
    seed: int


@dataclass(frozen=True)
class TrainSettings(StageSettings):
    SECTION = "audio.train"
    epochs: int
    batches_per_epoch: int
    batch_size: int
    lr: float
    lr_decay: float
    augment: Mapping[str, float]


@dataclass(frozen=True)
class AttackSettings(StageSettings):
    SECTION = "audio.attack"
    alpha: float
    epsilon: float
    lr: float
    max_iter: int


@dataclass(frozen=True)
class ExcerptSettings(StageSettings):
    SECTION = "audio.excerpts"
    per_song: int
    max_draws: int
    seed: int


@dataclass(frozen=True)
class AudioExplainSettings(StageSettings):
    """The audio explainers and their settings (audio LIME follows audioLIME, docs/method.md §3)."""

    SECTION = "audio.explain"
    explainers: tuple[str, ...]
    seed: int
    explainer: ExplainerSettings

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> AudioExplainSettings:
        base = take(params, cls.SECTION, ["explainers", "seed"])
        explainer = ExplainerSettings(**take(params, cls.SECTION, ExplainerSettings.keys_for(base["explainers"])))
        return cls(explainers=tuple(base["explainers"]), seed=base["seed"], explainer=explainer)

    def as_params(self) -> dict[str, Any]:
        return {"explainers": list(self.explainers), **self.explainer.as_params(), "seed": self.seed}
