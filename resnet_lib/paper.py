"""What He et al. (2016) report for CIFAR-10 (section 4.2 and Table 6), in one place.

Plain data, no behaviour: the chapters (through :mod:`resnet_lib.chapters.degradation`) and the
full reproduction (:mod:`resnet_lib.reproduce`) both compare against these numbers.
"""

from __future__ import annotations

#: Table 6: depth -> (test error in %, parameters in millions as printed). ResNet-110's error is the best of 5 runs.
TABLE6: dict[int, tuple[float, float]] = {
    20: (8.75, 0.27),
    32: (7.51, 0.46),
    44: (7.17, 0.66),
    56: (6.97, 0.85),
    110: (6.43, 1.7),
    1202: (7.93, 19.4),
}
#: ResNet-110's mean ± standard deviation over its 5 runs (the paper's text beside Table 6).
RESNET110_MEAN_STD: tuple[float, float] = (6.61, 0.16)
#: The training budget: 64k iterations of batch 128 (:class:`resnet_lib.recipe.Recipe`'s default batch)
#: on CIFAR-10's 50k training images. The schedule
#: (rate drops at 32k and 48k, stop at 64k) "is determined on a 45k/5k train/val split" (section 4.2).
ITERATIONS = 64_000
#: Figure 1's two plain nets, whose training errors show the degradation problem (chapter 3's subject).
FIGURE1_DEPTHS: tuple[int, int] = (20, 56)
TRAIN_IMAGES = 50_000
