"""Models: the CIFAR nets of He et al. (2016) and the small nets of chapters 2 and 4."""

from resnet_lib.models.cifar import (
    FAMILIES,
    SHORTCUT_OPTIONS,
    BasicBlock,
    CifarNet,
    ZeroPadShortcut,
    blocks_per_stage,
    cifar_net,
    cifar_resnet,
    count_parameters,
    plain_cifar_net,
)
from resnet_lib.models.deep import ACTIVATIONS, ARCHITECTURES, DeepConvNet, DeepMLP, DeepNet, deep_net
from resnet_lib.models.scalar import ResidualModule, ScalarNet, scalar_net

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "FAMILIES",
    "SHORTCUT_OPTIONS",
    "BasicBlock",
    "CifarNet",
    "DeepConvNet",
    "DeepMLP",
    "DeepNet",
    "ResidualModule",
    "ScalarNet",
    "ZeroPadShortcut",
    "blocks_per_stage",
    "cifar_net",
    "cifar_resnet",
    "count_parameters",
    "deep_net",
    "plain_cifar_net",
    "scalar_net",
]
