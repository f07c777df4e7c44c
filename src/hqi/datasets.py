"""Built-in datasets (see catalog.py)."""
