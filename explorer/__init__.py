"""The Streamlit explorer: page scripts in explorer/pages/, shared helpers here; streamlit_app.py wires them up."""
