"""Stands in for torch where a test asserts that torch is not imported (e.g. parsing the workflow)."""

raise ImportError("torch was imported where it must not be (tests/no_torch is first on PYTHONPATH)")
