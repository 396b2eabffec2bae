"""Classifiers: the architectures, the one training recipe, and byte-stable model files."""

MODEL_FILE = "model.pt"  # the weights file in every model directory (here so readers need not import torch)
