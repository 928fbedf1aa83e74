"""Miners that fill the store: Qualtrics survey exports, GitHub issues, and their schedule."""
