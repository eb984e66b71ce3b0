# Helpers shared by the rules: parse-time checks, wildcard domains and params providers.
# Rules stay thin: every `params:` is a call to one of the functions below.
# Parsing imports no torch and lists no data set: the manifests are written by jobs, once
# (docs/data.md), and the shard counts are read from the image manifest (a checkpoint).
import math
import os

from advxai import config_checks, gpu_resources, weights
from advxai.data.image_items import manifest_length
from advxai.data.roots import link_data_root
from advxai.names import FAMILIES

config_checks.check_config(config)

IMAGE = config["image"]
AUDIO = config["audio"]
AUTHORS_CODE = config["authors_code"]

# Every rule runs in this environment under `--sdm conda` (relative to workflow/rules/). Its
# post-deploy script installs advxai from this repository, which it finds through ADVXAI_SOURCE.
ADVXAI_ENV = "../../envs/advxai.yaml"
os.environ.setdefault("ADVXAI_SOURCE", workflow.basedir)

# External data sets are read through fixed links in the working directory, kept pointing at
# the configured folders: no params or input names carry a data folder's location.
IMAGENET_LINK = "data/imagenet"
JAMENDO_LINK = "data/jamendo"
if IMAGE["enabled"] and IMAGE["dataset"] == "imagenet":
    link_data_root(IMAGENET_LINK, IMAGE["imagenet_root"])
if AUDIO["enabled"] and AUDIO["corpus"] == "jamendo":
    link_data_root(JAMENDO_LINK, AUDIO["jamendo_root"])


# ---------------------------------------------------------------------------------- image domain
def image_models():
    """Labels of the enabled models (an overlay can switch off a model of the base config)."""
    return [m for m, entry in IMAGE["models"].items() if entry.get("enabled", True)] if IMAGE["enabled"] else []


def image_data_root():
    """The image data folder as a job input: the link, `ancient` so that its date reruns nothing
    (the manifest's content decides); none for the bundled photographs."""
    return {"root": ancient(IMAGENET_LINK)} if IMAGE["dataset"] == "imagenet" else {}


def image_manifest_inputs(wildcards):
    return image_data_root()


def image_manifest_file():
    """The manifest of the configured data set; raises Snakemake's incomplete-checkpoint signal until it exists."""
    return checkpoints.image_manifest.get(dataset=IMAGE["dataset"]).output[0]


_manifest_lengths = {}


def image_item_count():
    """How many images the image domain runs on (after `max_images`), read from the manifest once per change of it."""
    path = image_manifest_file()
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _manifest_lengths:
        _manifest_lengths[key] = manifest_length(path)
    limit = IMAGE["max_images"]
    return _manifest_lengths[key] if limit is None else min(limit, _manifest_lengths[key])


def image_shards():
    return list(range(math.ceil(image_item_count() / IMAGE["shard_size"])))


def image_shard_inputs(wildcards):
    return {"manifest": image_manifest_file(), **image_data_root()}


def model_entry(wildcards):
    return IMAGE["models"][wildcards.model]


def model_spec(wildcards):
    """What identifies a model's weights and preprocessing, and the arithmetic of its passes."""
    entry = model_entry(wildcards)
    resize, crop = config_checks.model_sizes(entry)
    return {"architecture": entry["architecture"], "weights": entry.get("weights", "DEFAULT"), "resize": resize, "crop": crop,
            "arithmetic": IMAGE["arithmetic"]}


def model_crop(model):
    return config_checks.model_sizes(IMAGE["models"][model]).crop


def model_resize(model):
    return config_checks.model_sizes(IMAGE["models"][model]).resize


def model_weights_url(model):
    """URL of a model's weights file (its `weights_url`, else torchvision's); None where none is fetched."""
    entry = IMAGE["models"][model]
    try:
        url = weights.weights_url(entry["architecture"], entry.get("weights", "DEFAULT"), entry.get("weights_url"))
        if url:
            weights.expected_hash_prefix(weights.file_name(url))
    except weights.WeightsError as error:
        raise config_checks.ConfigError(f"image.models.{model}.weights / weights_url: {error}") from error
    return url


def weights_files():
    """File name -> URL of the enabled models' weights: one fetch per file, however many models read it."""
    files = {}
    for model in image_models():
        url = model_weights_url(model)
        if url and files.setdefault(weights.file_name(url), url) != url:
            raise config_checks.ConfigError(f"image.models.{model}.weights_url: two URLs for {weights.file_name(url)}")
    return files


WEIGHTS_FOLDER = weights.WEIGHTS_FOLDER
WEIGHTS_FILES = weights_files()


def model_weights_file(wildcards):
    """The weights file a model job reads (none for random weights, EfficientNet-Lite0 and plug-ins)."""
    url = model_weights_url(wildcards.model)
    return f"{WEIGHTS_FOLDER}/{weights.file_name(url)}" if url else []


def weights_fetch_url(wildcards):
    return WEIGHTS_FILES[wildcards.file]


def image_shard_file(wildcards):
    """Decoded images live under image/data/ (the manifest beside them), each model's results under
    image/<model>/: the config schema reserves the model label `data`."""
    return image_shard_path(wildcards.model, wildcards.shard)


def image_shard_path(model, shard):
    return f"image/data/{IMAGE['dataset']}/{model_resize(model)}-{model_crop(model)}/shard{shard}.h5"


def dataset_params(wildcards):
    return {
        "dataset": IMAGE["dataset"],
        "max_images": IMAGE["max_images"],
        "shard_size": IMAGE["shard_size"],
        "shard": int(wildcards.shard),
        "resize": int(wildcards.resize),
        "crop": int(wildcards.crop),
    }


def pgd_params(wildcards):
    entry = model_entry(wildcards)
    return {"epsilon": entry["epsilon"], "step_size": entry["step_size"], **IMAGE["pgd"], "seed": config["seed"]}


def subset_params(wildcards):
    return {**IMAGE["subset"], "seed": config["seed"], "model": wildcards.model}


def segmentation_params(wildcards):
    if wildcards.seg == "rect":
        return {"method": "rect", **IMAGE["rect"]}
    return {"method": "slic", **IMAGE["slic"]}


def explanation_families():
    """Explanation jobs per model: gradient families with a requested member, LIME per segmentation, extras."""
    requested = set(IMAGE["explainers"])
    families = [f for f, members in FAMILIES.items() if requested & set(members)]
    if "lime" in requested:
        families += [f"lime_{seg}" for seg in IMAGE["segmentations"]]
    if IMAGE["extra_explainers"]:
        families.append("extra")
    return families


def family_explainers(family):
    if family.startswith("lime_"):
        return ["lime"]
    if family == "extra":
        return [e["name"] for e in IMAGE["extra_explainers"]]
    return [e for e in FAMILIES[family] if e in IMAGE["explainers"]]


def family_segmentations(family):
    """The segmentations an explanation family is aggregated on: LIME's own, or every one."""
    return [family.removeprefix("lime_")] if family.startswith("lime_") else IMAGE["segmentations"]


def explain_params(wildcards):
    family = wildcards.family
    settings = IMAGE["explain"]
    params = {"family": family, "explainers": family_explainers(family), "seed": config["seed"], "segmentations": family_segmentations(family)}
    if family.startswith("lime_"):
        params.update(lime_samples=settings["lime_samples"], lime_kernel_width=settings["lime_kernel_width"])
    elif family == "extra":
        params.update(extra=IMAGE["extra_explainers"])
    else:
        params.update(noise_samples=settings["noise_samples"], noise_std=settings["noise_std"])
        if family == "ig":
            params.update(ig_steps=settings["ig_steps"])
        if family == "gbp":
            params.update(unguided_functional_relu=AUTHORS_CODE["unguided_functional_relu"])
    params["keep_attributions"] = settings["keep_attributions"]
    return params


def explanation_files(wildcards):
    """The explanation shards a segmentation's metrics read: every family but other segmentations' LIME."""
    seg = wildcards.seg
    families = [f for f in explanation_families() if not f.startswith("lime_") or f == f"lime_{seg}"]
    return {f: f"image/{wildcards.model}/explanations/{f}/shard{wildcards.shard}.h5" for f in families}


def labelflip_params(wildcards):
    flip = IMAGE["labelflip"]
    ks = flip["rect_ks"] if wildcards.seg == "rect" else []
    fractions = flip["slic_fractions"] if wildcards.seg == "slic" else []
    return {"segmentation": wildcards.seg, "k": flip["k"], "ks": ks, "fractions": fractions,
            "empty_fraction_selects_all": AUTHORS_CODE["empty_fraction_selects_all"]}


def explain_segment_files(wildcards):
    """The segments files of an explanation job, in the order of its params' `segmentations`."""
    shard = f"shard{wildcards.shard}.h5"
    return [f"image/{wildcards.model}/segments/{seg}/{shard}" for seg in family_segmentations(wildcards.family)]


def labelflip_explanation_files(wildcards):
    return list(explanation_files(wildcards).values())


def adversary_shards(wildcards):
    return image_shard_outputs("adversaries", wildcards.model)


def localised_params(wildcards):
    """Everything the localised stage needs to re-explain the refined inputs (not keep_attributions:
    it keeps no pixel maps, so toggling that key reruns none of its jobs)."""
    settings = IMAGE["explain"]
    return {
        "explainers": IMAGE["explainers"],
        "extra": IMAGE["extra_explainers"],
        **{key: settings[key] for key in ("lime_samples", "lime_kernel_width", "noise_samples", "noise_std", "ig_steps")},
        "ks": IMAGE["localised"]["ks"],
        "segmentation": wildcards.seg,
        "seed": config["seed"],
        **({"unguided_functional_relu": AUTHORS_CODE["unguided_functional_relu"]}
           if any(name.startswith("gbp") for name in IMAGE["explainers"]) else {}),
    }


def refine_params(wildcards):
    """What the refine stage needs: the segmentation and the ks, not the explainers (changing them
    reruns the localised jobs only)."""
    return {"segmentation": wildcards.seg, "ks": IMAGE["localised"]["ks"]}


EXPLAIN_SETTINGS = ("lime_samples", "lime_kernel_width", "noise_samples", "noise_std", "ig_steps")


def examples_params(wildcards):
    """The example images of the method figures (image.examples) and the explainers that draw them:
    every configured one, and IG for Fig. 4's raw pixel map."""
    settings = IMAGE["explain"]
    explainers = list(dict.fromkeys([*IMAGE["explainers"], "ig"]))
    return {
        **IMAGE["examples"],
        "seed": config["seed"],
        "segmentations": IMAGE["segmentations"],
        "ks": IMAGE["localised"]["ks"],
        "explainers": explainers,
        "extra": IMAGE["extra_explainers"],
        **{key: settings[key] for key in EXPLAIN_SETTINGS},
    }


def image_example_inputs(wildcards):
    """Every shard of a model; segments and refine files segmentation after segmentation, as in examples_params."""
    model = wildcards.model
    return {
        "images": [image_shard_path(model, s) for s in image_shards()],
        "adversaries": image_shard_outputs("adversaries", model),
        "subset": f"image/{model}/subset.h5",
        "segments": [p for seg in IMAGE["segmentations"] for p in image_shard_outputs(f"segments/{seg}", model)],
        "refined": [p for seg in IMAGE["segmentations"] for p in image_shard_outputs(f"refined/{seg}", model)],
        "weights": model_weights_file(wildcards),
    }


def localised_explainer_names():
    """The explainers of the localised experiment, plug-ins included, in the order of its files."""
    return IMAGE["explainers"] + [e["name"] for e in IMAGE["extra_explainers"]]


def image_method_figure_files():
    """Figs 1, 9 and the refined perturbations per model and segmentation; Figs 4 and 10 per model."""
    models, segmentations = image_models(), IMAGE["segmentations"]
    per_pair = [f"results/figures/image_{name}_{model}_{seg}.png" for model in models for seg in segmentations
                for name in ("fig1", "fig9", "refined")]
    return per_pair + [f"results/figures/image_{name}_{model}.png" for model in models for name in ("fig4", "fig10")]


def image_shard_outputs(stage, model):
    return [f"image/{model}/{stage}/shard{s}.h5" for s in image_shards()]


def device_param():
    return config["device"]


def job_gpus():
    """GPUs a model job holds: one where jobs run on CUDA (profiles/slurm requests it per job), none
    on a CPU-only machine. Local runs share a GPU through ``gpu_share`` instead."""
    return 1 if gpu_resources.cuda_expected(config["device"]) else 0


def image_model_segmentations():
    """(model, segmentation) pairs in the order the image report lists their shard files."""
    return [[model, seg] for model in image_models() for seg in IMAGE["segmentations"]]


def slic_models():
    """Models whose SLIC segment counts make Table 6 (none without the SLIC segmentation)."""
    return image_models() if "slic" in IMAGE["segmentations"] else []


def image_report_inputs(wildcards):
    """The shard files the image tables read, one list per stage: group after group in the order of
    the rule's params (`models`, `pairs`, `slic_models`), each group with the data set's shards."""
    return {
        "adversaries": [path for model in image_models() for path in image_shard_outputs("adversaries", model)],
        "labelflip": [path for model, seg in image_model_segmentations() for path in image_shard_outputs(f"labelflip/{seg}", model)],
        "localised": [path for model, seg in image_model_segmentations() for path in image_shard_outputs(f"localised/{seg}", model)],
        "slic_segments": [path for model in slic_models() for path in image_shard_outputs("segments/slic", model)],
    }


def findings_inputs(wildcards):
    """The per-item files the findings read: the image tables' shards (without SLIC counts) and
    the audio experiments' per-detector files; a domain that does not run contributes none."""
    image = image_report_inputs(wildcards) if image_models() else {"adversaries": [], "labelflip": [], "localised": []}
    audio = AUDIO["enabled"]
    return {"adversaries": image["adversaries"], "labelflip": image["labelflip"], "localised": image["localised"],
            "audio_labelflips": audio_experiment_files("labelflip") if audio else [],
            "audio_localised": audio_experiment_files("localised") if audio else []}


def image_figures():
    """Figs 5-8 as records (figure, model, segmentation), in the order of image_figure_files()."""
    models, segmentations = image_models(), IMAGE["segmentations"]
    return (
        [{"figure": "fig5", "model": model, "segmentation": None} for model in models]
        + [{"figure": figure, "model": None, "segmentation": seg} for figure in ("fig6", "fig7") for seg in segmentations]
        + [{"figure": "fig8", "model": model, "segmentation": seg} for model in models for seg in segmentations]
    )


def image_figure_files():
    """One PNG per record of image_figures(); its name is for people, the rule passes the records."""
    return [
        "results/figures/image_" + "_".join(part for part in (f["figure"], f["model"], f["segmentation"]) if part) + ".png"
        for f in image_figures()
    ]


def image_gpu_share(wildcards):
    """``gpu_share`` of a model job: CUDA context plus a batch's activations at the model's input size."""
    footprint = gpu_resources.image_footprint_gib(IMAGE["batch_size"], model_crop(wildcards.model))
    return gpu_resources.gpu_share(config["device"], footprint)


# ---------------------------------------------------------------------------------- audio domain
def corpus_input():
    """The synthetic corpus is a rule's output; a real Jamendo corpus is read in place through its
    link, `ancient` so that its date reruns nothing (the manifest's content decides)."""
    return "audio/corpus" if AUDIO["corpus"] == "synthetic" else ancient(JAMENDO_LINK)


def synthetic_corpus_params():
    return {**AUDIO["synthetic"], "seed": config["seed"]}


def audio_excerpt_params(wildcards):
    return {**AUDIO["excerpts"], "seed": config["seed"]}


def audio_experiment_seeds():
    """Detectors the attack experiments run on (audio.experiment_seeds; null: every trained one)."""
    return AUDIO["experiment_seeds"] or AUDIO["seeds"]


def audio_explain_params(wildcards):
    return {"explainers": AUDIO["explainers"], **AUDIO["explain"], "seed": config["seed"]}


def audio_outputs():
    if not AUDIO["enabled"]:
        return []
    tables = [f"results/tables/audio_{t}.csv" for t in ("svds", "labelflip", "localised", "comparisons")]
    figures = [f"results/figures/audio_{f}.png" for f in ("fig2", "fig3", "excerpt")]
    refined = [f"results/figures/audio_refined_seed{seed}.png" for seed in audio_experiment_seeds()]
    return tables + ["results/tables/audio_tables.md"] + figures + refined


def audio_experiment_files(stage):
    """A per-detector stage's files, one per experiment seed in audio_experiment_seeds() order."""
    return [f"audio/{stage}/seed{seed}.h5" for seed in audio_experiment_seeds()]


def audio_gpu_share():
    """``gpu_share`` of a detector job: the detector is small, so its footprint is the CUDA context."""
    return gpu_resources.gpu_share(config["device"], gpu_resources.CUDA_CONTEXT_GIB)


# ---------------------------------------------------------------------------------- targets
def image_outputs():
    if not image_models():
        return []
    tables = ["image_accuracy", "image_labelflip", "image_localised", "image_slic_segments", "image_comparisons"]
    figures = image_figure_files() + image_method_figure_files()
    return [f"results/tables/{t}.csv" for t in tables] + ["results/tables/image_tables.md"] + figures


def findings_outputs():
    """The paper's findings checked on this run, wherever a domain runs."""
    return ["results/findings.md", "results/tables/findings.csv"] if image_models() or AUDIO["enabled"] else []


def all_outputs():
    return image_outputs() + audio_outputs() + findings_outputs()
