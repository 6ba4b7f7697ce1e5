"""Report-writing engines: the offline extractive engine (default, ``offline``) and the engine for
OpenAI-compatible models (``model``), chosen per worker by whether a model is configured."""
