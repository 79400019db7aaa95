"""The JupyterLab panel in a real browser (Playwright + Debian Chromium) against real Jupyter and service."""
