"""Losses: the Multi-Frequency Alignment loss (paper Eq. 3-5) and soft-target cross-entropy."""
from .mfal_loss import MFALoss, soft_cross_entropy

__all__ = ["MFALoss", "soft_cross_entropy"]
