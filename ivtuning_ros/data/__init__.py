"""Datasets: loaders for the real RGB-T formats, the night/fog scene generator and writers.

Knows files and pixels, nothing of models: everything here yields `types.RGBTSample`.
"""
