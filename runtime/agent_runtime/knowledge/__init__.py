"""The knowledge layer: documents ingested into a shared index that agents search (see base.py)."""
