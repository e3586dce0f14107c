"""resnet_lib: everything the chapters of The ResNet Book need, and nothing they don't.

``import resnet_lib as rl`` and call ``rl.setup()`` in a chapter's first cell.
"""

from resnet_lib.data import ImageDataset, augment_batch, iterate_batches, load_dataset
from resnet_lib.models import (
    BasicBlock,
    CifarNet,
    cifar_net,
    cifar_resnet,
    count_parameters,
    plain_cifar_net,
)
from resnet_lib.notebook import glue, seed_everything, setup
from resnet_lib.profiles import DataSpec, get_profile, profile_name, set_profile
from resnet_lib.recipe import Recipe
from resnet_lib.runs import CifarRun, cifar_run, experiment_data
from resnet_lib.training import History, evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "BasicBlock",
    "CifarNet",
    "CifarRun",
    "DataSpec",
    "History",
    "ImageDataset",
    "Recipe",
    "augment_batch",
    "cifar_net",
    "cifar_resnet",
    "cifar_run",
    "count_parameters",
    "evaluate",
    "experiment_data",
    "fit",
    "get_profile",
    "glue",
    "iterate_batches",
    "load_dataset",
    "plain_cifar_net",
    "profile_name",
    "seed_everything",
    "set_profile",
    "setup",
]
