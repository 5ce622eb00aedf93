"""Rules for the catalog's "loss" causes: one module per cause id."""
