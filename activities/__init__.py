"""Every side effect of a research run, one activity per side effect."""
