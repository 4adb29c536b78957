"""The stack's own upgrades: brings the items table's data in line with the code's layout."""
