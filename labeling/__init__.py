"""Collaborative coding of items against a codebook: Label Studio sync, agreement, adjudication."""
