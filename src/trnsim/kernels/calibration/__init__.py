"""Kernels that exist only to calibrate the timing model against published measurements (docs/calibration.md).

* `microbench`: single DMA transfers (rows A29, A36), dependent 1-element activations (A30), one short
  matmul (A35).
* `kernel_opt_matmul`: the fp32 matmul versions v2..v5 of AWS's kernel-optimisation tutorial (rows A31-A34).

The matmul tutorial ladder (A1-A4) uses `trnsim.kernels.matmul`, the Mamba rows (A6-A26) `trnsim.kernels.mamba`.
"""
