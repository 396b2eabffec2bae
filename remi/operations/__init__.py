"""Erasure requests as an operation: the envelope they arrive in, the hash-chained ledger of what
happened to each, intake into the forget set, and the re-unlearning job a scheduler runs."""
