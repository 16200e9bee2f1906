"""Triton serving: model repository publishing and a managed CPU tritonserver."""
