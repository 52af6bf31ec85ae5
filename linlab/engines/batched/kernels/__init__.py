"""Accelerated implementations of the batched engine's SGD step, interchangeable and each tested
against the plain per-epoch step (:mod:`..update`, :mod:`..epochs`) and against
:mod:`linlab.optim` itself (tests/test_kernels_against_optim.py):

- :mod:`.native`: the C kernel (``sgd_kernel.c``) on the CPU, built once per machine;
- :mod:`.fused`: whole blocks of epochs, stop rules included, through TorchInductor, on the
  factors, or for wide depth-2 runs on their Gram matrix (:mod:`.gram`);
- :mod:`.compiled`: the statistics path's loss and gradient through TorchInductor, for the
  other optimizers.
"""
