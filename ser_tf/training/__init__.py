"""Losses, metrics, evaluation protocols, callbacks and the resumable k-fold runner."""
