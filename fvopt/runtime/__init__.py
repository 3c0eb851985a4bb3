"""The process a run lives in: devices, memory checks, speed settings, signals, scoped global state."""
