"""hive's own frontend builds driven in headless Chromium against `hivelog serve`."""
