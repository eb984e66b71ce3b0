"""The one place where advxai imports torchvision: :func:`import_torchvision`.

Why a guard: torchvision 0.29's ``ops/roi_align.py`` imports ``is_compile_supported`` from
``torch._dynamo.utils`` at module level, which loads the whole compiler stack: 2.4 s of CPU in
every job that builds a torchvision model, for an operator no classifier uses.

How: while torchvision is imported, that name comes from a stand-in module in ``sys.modules``
whose function imports the real one on its first call; the stand-in leaves ``sys.modules`` before
:func:`import_torchvision` returns, so ``torch._dynamo`` imports as usual afterwards. Where
torchvision or ``torch._dynamo`` is already loaded this is a plain import.

Every model builder calls :func:`import_torchvision` instead of ``import torchvision``
(tests/test_models.py checks that building a model leaves ``torch._dynamo`` unloaded).
"""

from __future__ import annotations

import sys
import types


def import_torchvision() -> types.ModuleType:
    """``import torchvision``, without importing ``torch._dynamo`` on the way (see the module docstring)."""
    if "torchvision" in sys.modules or "torch._dynamo" in sys.modules:
        import torchvision

        return torchvision

    def is_compile_supported(device_type: str) -> bool:
        from torch._dynamo.utils import is_compile_supported as compiler_check

        return compiler_check(device_type)

    stand_in = types.ModuleType("torch._dynamo.utils", "stand-in while torchvision is imported (advxai.torchvision_import)")
    stand_in.is_compile_supported = is_compile_supported
    sys.modules[stand_in.__name__] = stand_in
    try:
        import torchvision
    finally:
        if sys.modules.get(stand_in.__name__) is stand_in:
            del sys.modules[stand_in.__name__]
    return torchvision
