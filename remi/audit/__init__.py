"""The privacy audit: scoring each model, forgetting quality, acceptance checks, and the reports."""
