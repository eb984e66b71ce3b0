"""Workflow stages: one function per rule, reading inputs and writing outputs; the algorithms live in
:mod:`advxai.evaluation`, :mod:`advxai.explainers` and :mod:`advxai.attacks`."""
