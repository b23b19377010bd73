"""Profiles: Perfetto traces, Neuron-style metrics and warnings, HTML reports."""
