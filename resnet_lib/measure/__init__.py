"""Measurements of networks: forward-signal statistics and costs. Nothing here trains or plots."""
