"""PC-DARTS architecture search on a (sub)set: partial-channel supernet, bilevel loop, genotype derivation."""
from kmix.models.darts_genotype import Genotype, load_genotype, save_genotype
from kmix.search.genotype import derive_cell, derive_genotype
from kmix.search.loop import SearchConfig, run_search
from kmix.search.supernet import PartialMixedOp, SearchNetwork, channel_shuffle, normalised_edge_weights

__all__ = [
    "Genotype", "PartialMixedOp", "SearchConfig", "SearchNetwork", "channel_shuffle", "derive_cell",
    "derive_genotype", "load_genotype", "normalised_edge_weights", "run_search", "save_genotype",
]
