"""Capture sessions. Installed as `phonehome.captures` only to ship the bundled sample as package data
(read with importlib.resources); users' own captures stay here in a checkout and never enter a wheel."""
