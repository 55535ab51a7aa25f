"""Measuring the method: the metrics (`metrics`) and one module per benchmark (`adamesh bench ...`).

Benchmarks print numbers and write tables; speed and quality targets are checked here, not in unit
tests. Nothing on the inference path imports a benchmark."""
