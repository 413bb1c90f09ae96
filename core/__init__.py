"""What the runtime shares with training, at the bottom of the layout: the model bundle format and
its store, preprocessing, the MMD kernels and the HDF5 datasets.

Nothing here imports another skyguard package. Dependencies: numpy, ONNX Runtime, h5py, and
torch for the MMD kernels only (``core.mmd``: the training loss must be differentiable, and the
monitor's permutation test, which holds torch anyway for its canaries, runs on the same kernels).
"""
