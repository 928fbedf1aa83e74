"""Read-side queries shared by the app, the CLI and reports; they return DataFrames or typed rows."""
