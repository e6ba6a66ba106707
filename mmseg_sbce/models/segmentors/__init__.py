# Copyright (c) mmseg-sbce contributors.
