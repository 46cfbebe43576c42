"""The decoder, private: options, plan and the numba kernels (see ``decoding.py``)."""
