"""Training data: the synthetic corpus, the clip dataset, and readers for public data layouts."""
