"""ReMI: membership-inference-guided machine unlearning, with the audit that checks it.

The package is the library; `stages/` holds the thin DVC entry points that call it.
"""
