"""Measurements of networks: gradients, statistics, probes, responses, lesions, landscapes, signal, cost."""
