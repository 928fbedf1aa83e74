"""The one relational store: tables, engine/session helpers, migrations, queries and exports."""
