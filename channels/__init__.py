"""Channel adapters behind one small interface."""
