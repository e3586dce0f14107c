"""Models: the CIFAR nets of He et al. (2016) and their variants, the ImageNet ResNets, chapters 2 and 4's nets."""

from resnet_lib.models.cifar import (
    BLOCKS,
    FAMILIES,
    SHORTCUT_OPTIONS,
    ZERO_PADDINGS,
    BasicBlock,
    CifarNet,
    PreActBlock,
    UnnormalizedBlock,
    ZeroPadShortcut,
    blocks_per_stage,
    cifar_net,
    cifar_resnet,
    count_parameters,
    net_label,
    plain_cifar_net,
)
from resnet_lib.models.deep import ACTIVATIONS, ARCHITECTURES, DeepConvNet, DeepMLP, DeepNet, deep_net
from resnet_lib.models.imagenet import (
    IMAGENET_LAYOUTS,
    Bottleneck,
    ImageNetResNet,
    imagenet_resnet,
    load_torchvision_state,
)
from resnet_lib.models.scalar import NetSpec, ResidualModule, ScalarNet
from resnet_lib.models.state import calibrate_batchnorm, preserved_state

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "BLOCKS",
    "FAMILIES",
    "IMAGENET_LAYOUTS",
    "SHORTCUT_OPTIONS",
    "ZERO_PADDINGS",
    "BasicBlock",
    "Bottleneck",
    "CifarNet",
    "DeepConvNet",
    "DeepMLP",
    "DeepNet",
    "ImageNetResNet",
    "NetSpec",
    "PreActBlock",
    "ResidualModule",
    "ScalarNet",
    "UnnormalizedBlock",
    "ZeroPadShortcut",
    "blocks_per_stage",
    "calibrate_batchnorm",
    "cifar_net",
    "cifar_resnet",
    "count_parameters",
    "deep_net",
    "imagenet_resnet",
    "load_torchvision_state",
    "net_label",
    "plain_cifar_net",
    "preserved_state",
]
