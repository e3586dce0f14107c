"""The chapters' figures and widgets: they take results and draw them; nothing here imports the training loop."""
