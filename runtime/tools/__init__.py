"""Tools over the registry: check one variant on one case (check), rerun a printed failure (repro),
many op calls with memory and object counts (soak, memcheck)."""
