"""The process: twistd glue, listeners, workers, signals."""
