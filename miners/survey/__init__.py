"""Qualtrics survey import: reader (export -> raw rows + question metadata), plan (kinds, choices, answers), loader."""
