"""The assignment's targets, defined once: every notebook, table, plot and index checks against
these. No torch here, so that reading a study's record does not load it."""
LINE = 99.40  # % test accuracy each of a run's last 5 epochs must reach
EPOCHS = 15  # the epoch budget: targets are checked only on full-data runs of this length
PARAMS_BELOW = 8000  # trainable parameters, fewer than
MEAN_LINE = 99.50  # % over seeds, the mean of each seed's worst last-5 epoch (04_seeds)
