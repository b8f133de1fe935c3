"""Phase 5 (T1): multi-token residual patching through nnsight (`residual`), its plain-PyTorch
forward-hook reference (`reference`), continuation fluency (`fluency`), and the experiment: conditions,
controls, the layer/alpha sweep and per-sample tables (`experiment`)."""
