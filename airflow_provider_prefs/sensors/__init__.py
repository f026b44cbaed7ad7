"""Sensors: wait for a MyPreferences profile update to be processed."""

from airflow_provider_prefs.sensors.profile_status import ProfileUpdateStatusSensor

__all__ = ["ProfileUpdateStatusSensor"]
