"""
FasterStore tests, run with trial.

Hypothesis runs without its per-example deadline and too-slow health check:
on a shared 2-core CI machine those fail on timing, never on behaviour.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fasterstore", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("fasterstore")
