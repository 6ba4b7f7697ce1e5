"""DeepScientist domain code: contracts, settings, providers and stores shared by the Temporal roles."""
