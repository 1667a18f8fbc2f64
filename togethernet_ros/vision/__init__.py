"""Image-side pre- and post-processing, framework-light (numpy + torch tensors).

letterbox / preprocess: upstream-identical letterbox and ImageNet normalisation (CPU or CUDA);
decode / nms / postprocess: head maps -> boxes in source pixels; dehazed: restoration output ->
uint8 images; draw: debug drawing; detections: the per-image result container; fog: synthetic
fog (owned by training). Submodules are imported explicitly; nothing is imported here.
"""
