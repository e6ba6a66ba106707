# Copyright (c) mmseg-sbce contributors.
"""Offline converters from official data set releases to the layout our data sets read.

Not imported by :mod:`mmseg_sbce.datasets`: converters register nothing and are used by the
thin scripts under ``tools/dataset_converters/``.
"""
