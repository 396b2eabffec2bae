"""What every layer runs on: device choice, atomic files, locks, process identity. Knows nothing of ML."""
