"""Qualtrics survey import: reader and layout (export -> columns and roles), qsf/definition (the survey file),
matching (definition <-> export columns), plan / defined_plan (questions and answers), loader, workflow."""
