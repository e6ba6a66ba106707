# Copyright (c) mmseg-sbce contributors.
from .sbce_classifier import SBCEClassifier

__all__ = ['SBCEClassifier']
