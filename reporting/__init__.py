"""Reports built from the database (the study's tables); they read through db/queries."""
