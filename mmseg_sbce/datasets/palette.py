# Copyright (c) mmseg-sbce contributors.
"""Colour palettes shared by the data sets, the demo generator and PNG export."""
from typing import List


def voc_colormap(num_colors: int = 256) -> List[List[int]]:
    """The PASCAL VOC colour map: the bits of the index spread over R, G and B.

    Entry 0 is black (background); VOC's 21 classes use entries 0..20 and its 255
    (ignore) entry is (224, 224, 192). The rule extends to any number of entries, so
    COCO's 81 classes and the demo data set use the same scheme.

    Args:
        num_colors (int): Number of entries. Defaults to 256 (a full PNG palette).

    Returns:
        list[list[int]]: ``num_colors`` ``[r, g, b]`` triples.
    """
    palette = []
    for index in range(num_colors):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette.append([r, g, b])
    return palette


def flat_png_palette() -> List[int]:
    """The 768-value flat VOC palette for ``PIL.Image.putpalette`` (mode ``'P'``)."""
    return [value for rgb in voc_colormap(256) for value in rgb]
