"""The chapters' figures: they take arrays and draw them; nothing here trains or measures."""
