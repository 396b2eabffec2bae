"""Membership inference: confidence signals, shadow models, the shadow attack model, the audit attacks
(shadow, loss, MIA-efficacy, LiRA, RMIA) and ROC metrics."""
