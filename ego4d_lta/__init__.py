"""ego4d-lta: from Ego4D annotations and clips to a scored Ego4D LTA challenge submission."""

__version__ = "0.1.0"
