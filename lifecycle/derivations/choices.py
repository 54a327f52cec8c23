"""Enumerations of the update stage.

``lifecycle.derivations.methods.METHODS`` keeps a plain copy of the method names so the
pure core imports without Django; a test checks that the two agree.
"""

from __future__ import annotations

from django.db import models


class DerivationMethod(models.TextChoices):
    ONNX = "onnx", "ONNX conversion"
    QUANTIZE = "quantize", "Dynamic int8 quantization"
    PRUNE = "prune", "Pruning"
    DISTILL = "distill", "Distillation"
    INCREMENTAL = "incremental", "Incremental training"


class DerivationState(models.TextChoices):
    RUNNING = "running", "Running"
    REGISTERED = "registered", "Registered"
    FAILED = "failed", "Failed"
