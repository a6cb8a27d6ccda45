"""Pictures people would rather look at than read: mixing grids (the paper's Fig. 1/4)."""
from kmix.viz.mix_grid import ShowConfig, show_mix

__all__ = ["ShowConfig", "show_mix"]
