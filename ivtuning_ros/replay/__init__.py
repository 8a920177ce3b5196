"""Bag tools: synthetic RGB-T bags with ground truth, replay through the node (DDS or
offline), recording, matching by stamp, reports, plots."""
