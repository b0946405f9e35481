"""mitmproxy addons for recording a phone's traffic (load with `mitmdump -s addons/<name>.py`)."""
