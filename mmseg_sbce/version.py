# Copyright (c) mmseg-sbce contributors.
__version__ = '0.1.0'
