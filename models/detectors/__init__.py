"""Per-asset detectors, one kind of abnormal each (see :mod:`models.detectors.novelty`)."""
