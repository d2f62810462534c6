"""Fidelity and accuracy: how close a variant stays to its baseline, and to labels when a user has them."""
