"""Read-side queries the CLI, reports and the app share; they return DataFrames or typed rows."""
