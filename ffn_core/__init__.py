"""ffn_core: Frame Flexible Network (Zhang et al., CVPR 2023), a clean-room reproduction."""
__version__ = "0.1.0"
