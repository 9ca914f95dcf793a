"""Backbones: tensors in, tensors out."""
from pm_zoo.networks.conv import ConvDecoder
from pm_zoo.networks.conv import ConvEncoder
from pm_zoo.networks.mlp import DenseMLP
from pm_zoo.networks.mlp import ResidualMLP
