"""Language front ends: the legacy `neuronxcc.nki` API and the current `nki` API, over one core."""
