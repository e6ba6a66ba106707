# Copyright (c) mmseg-sbce contributors.
"""Our dense-CRF wrapper against a bare pydensecrf call on the same inputs.

    python benchmarks/bench_crf.py [--size 375 500] [--labels 3 21] [--repeats 7]

For each label count, the two calls alternate ``repeats`` times on identical inputs (a
VOC-sized random-texture image and a blocky label map); the report is the ratio of the
median times (target: <= 1.05) and a check that both give identical labels.
"""
import argparse
import time

import numpy as np


def bare_crf(img: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """The reference: pydensecrf used directly, as in its README."""
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_labels
    h, w = img.shape[:2]
    d = dcrf.DenseCRF2D(w, h, n)
    d.setUnaryEnergy(unary_from_labels(labels, n, gt_prob=0.7, zero_unsure=False))
    d.addPairwiseGaussian(sxy=3, compat=3)
    d.addPairwiseBilateral(sxy=40, srgb=5, rgbim=img, compat=10)
    q = d.inference(10)
    return np.argmax(np.array(q).reshape(n, h, w), axis=0)


def make_inputs(size, n, seed=0):
    rng = np.random.default_rng(seed)
    h, w = size
    img = np.ascontiguousarray(
        np.repeat(np.repeat(rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)), 8, 0), 8,
                  1)[:h, :w].astype(np.uint8))
    labels = np.repeat(np.repeat(rng.integers(0, n, (h // 25 + 1, w // 25 + 1)), 25, 0), 25,
                       1)[:h, :w].astype(np.uint8)
    return img, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, nargs=2, default=(375, 500))
    parser.add_argument('--labels', type=int, nargs='+', default=(3, 21))
    parser.add_argument('--repeats', type=int, default=7)
    args = parser.parse_args()

    from mmseg_sbce.apis import dense_crf
    print(f'dense CRF {args.size[0]}x{args.size[1]}, 10 iterations, median of '
          f'{args.repeats} alternating runs')
    print('| labels | bare pydensecrf (s) | dense_crf (s) | ratio | identical |')
    print('| --- | --- | --- | --- | --- |')
    for n in args.labels:
        img, labels = make_inputs(tuple(args.size), n)
        bare_crf(img, labels, n)  # warm-up
        t_bare, t_ours = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ref = bare_crf(img, labels, n)
            t1 = time.perf_counter()
            ours = dense_crf(img, labels, n)
            t2 = time.perf_counter()
            t_bare.append(t1 - t0)
            t_ours.append(t2 - t1)
        b, o = float(np.median(t_bare)), float(np.median(t_ours))
        print(f'| {n} | {b:.3f} | {o:.3f} | {o / b:.3f} | {bool((ref == ours).all())} |')


if __name__ == '__main__':
    main()
