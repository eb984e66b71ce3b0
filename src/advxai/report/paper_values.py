"""The paper's reported numbers (docs/method.md §9), for the Markdown tables beside ours."""

from __future__ import annotations

# Table 1: clean top-1 (%), adversarial top-1 (%), number of adversaries.
ACCURACY = {
    "alexnet": (56.52, 0.19, 49879),
    "vgg16": (71.59, 0.17, 49912),
    "resnet50": (76.13, 0.16, 49925),
    "densenet161": (77.14, 0.19, 49899),
    "inception_v3": (77.21, 0.38, 49846),
}

STANDARD = ("lime", "ig", "sal", "gbp")
ENSEMBLES = ("ig-sg", "sal-sg", "gbp-sg", "ig-sg2", "sal-sg2", "gbp-sg2", "ig-vg", "sal-vg", "gbp-vg")


def _rows(columns, table):
    return {model: dict(zip(columns, values)) for model, values in table.items()}


# Label-flip rate (%) at k = 3: Tables 2 (SLIC, standard), 3 (SLIC, ensembles), 7 (rect, standard), 8 (rect, ensembles).
LABELFLIP_K3 = {
    "slic": _rows(STANDARD, {
            "alexnet": (68.54, 52.16, 57.78, 60.18),
            "vgg16": (55.44, 40.90, 40.60, 49.44),
            "resnet50": (44.70, 27.18, 27.10, 36.20),
            "densenet161": (37.82, 22.42, 22.84, 19.42),
            "inception_v3": (40.86, 28.14, 26.52, 27.90),
        }),
    "rect": _rows(STANDARD, {
            "alexnet": (41.14, 38.90, 41.52, 43.80),
            "vgg16": (28.14, 27.72, 27.74, 31.84),
            "resnet50": (17.52, 15.56, 15.36, 17.60),
            "densenet161": (13.90, 12.96, 12.34, 9.34),
            "inception_v3": (15.10, 14.98, 14.54, 13.00),
        }),
}
_ENSEMBLE_K3 = {
    "slic": {
        "alexnet": (50.68, 54.32, 49.60, 50.70, 54.84, 47.84, 50.34, 54.82, 47.34),
        "vgg16": (39.42, 43.32, 39.72, 40.84, 43.30, 38.22, 41.68, 44.36, 40.82),
        "resnet50": (33.26, 34.28, 33.74, 34.06, 35.54, 33.56, 33.82, 35.40, 32.38),
        "densenet161": (27.24, 28.10, 14.10, 27.18, 29.28, 14.62, 26.48, 29.04, 14.52),
        "inception_v3": (33.74, 35.38, 25.22, 33.60, 36.04, 24.18, 35.50, 36.66, 23.46),
    },
    "rect": {
        "alexnet": (32.96, 34.92, 30.08, 34.62, 35.02, 29.52, 33.76, 35.56, 30.58),
        "vgg16": (24.36, 24.30, 21.60, 23.74, 25.28, 22.08, 25.24, 24.86, 21.82),
        "resnet50": (17.78, 16.90, 16.72, 17.10, 17.16, 16.38, 17.24, 17.24, 16.46),
        "densenet161": (13.92, 14.44, 6.48, 13.66, 14.90, 6.20, 14.22, 14.22, 6.62),
        "inception_v3": (17.80, 17.64, 13.36, 17.62, 18.20, 11.24, 17.52, 17.94, 11.12),
    },
}
for _seg, _table in _ENSEMBLE_K3.items():
    for _model, _row in _rows(ENSEMBLES, _table).items():
        LABELFLIP_K3[_seg][_model].update(_row)

# Table 6: SLIC segments per adversary (mean, std).
SLIC_SEGMENTS = {
    "alexnet": (11.039, 2.307),
    "vgg16": (11.048, 2.305),
    "resnet50": (11.042, 2.307),
    "densenet161": (11.046, 2.300),
    "inception_v3": (10.837, 2.384),
}

# Audio (docs/method.md §1.6, §4, §9).
SVDS_TEST = {"error": (11.54, 0.96), "recall": (89.61, 1.71), "specificity": (87.46, 1.00)}
AUDIO_LIME_K3 = {"sing_to_nosing": 32.0, "nosing_to_sing": 41.0}
AUDIO_LOCALISED_COUNTS = {1: 52, 3: 146, 5: 215}
