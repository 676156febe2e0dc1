"""The thin library behind the notebooks: one module per concern.

data (MNIST, verified) · models (Model_1..3) · train (engine) · summary (params, layers, RF) ·
plots · params (validation) · run (provenance, results, metrics) · pipeline + index (headless
runs and the reports index) · bench (speed of the data pipeline)
"""
