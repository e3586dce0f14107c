"""The chapters' studies: models, runs and measurements composed into plain data for one chapter each."""
