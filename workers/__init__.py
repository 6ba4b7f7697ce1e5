"""Worker processes: which task queue runs what."""
