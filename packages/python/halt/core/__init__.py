"""Halt's core: types, errors, policies, algorithms, presets, the limiter. Nothing here knows HTTP but the limiter's
request path, which calls halt.http.rules."""
