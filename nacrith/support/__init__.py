"""Support for the tests and the benchmarks, never used by the codec itself:

- ``coder``: the arithmetic coder's Python interface, symbol by symbol
  (the codec codes whole frames in C, csrc/lanes.h);
- ``feeder``: chosen tokens fed straight to the model, for checks of the
  model's own arithmetic (kernels, thread counts, speed);
- ``testhooks``: a model wrapper that makes a frame die or take its time, which
  the model factory (models/llm.open_model) puts around a model only when a
  test asks for it through the environment.

Shipped in the package because the tests run the installed package's own
processes (the CLI, the service's workers), which must find the hooks.
"""
