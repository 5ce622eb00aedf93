"""Rules for the catalog's "dynamics" causes (training dynamics): one module per cause id."""
