"""Data in: dataset loaders, the disjoint splits and forget set, erasure requests and their validation."""
