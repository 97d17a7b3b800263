"""The REST adapter (FastAPI): admin API, REST data plane, probes, metrics."""
