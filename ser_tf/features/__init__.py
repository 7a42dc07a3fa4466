"""Segmentation, front-ends, augmentation and the feature cache."""
