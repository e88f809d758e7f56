"""The bottom layer: data contracts shared by every other layer, pure numpy (no torch, no nnunetv2).

``synthrad``: tasks, regions (codes, region.json names, dataset offsets, scored labels), case ids and accepted image
suffixes; the one table every layer and CLI choice derives from. ``normalization``: how network inputs and the CT
target are normalised (preprocessing writes it into the plans, network carries it in synthct.json, inference and the
AFP loss apply it). ``compact_labels``: TotalSegmentator ``total`` classes → the 7 groups of the AFP extractor (the
extractor dataset writes them, the loss reads them).
"""
