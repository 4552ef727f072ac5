"""Pieces every app shares: JSON-lines events on stdout (:mod:`apps.common.events`), an MQTT
publisher that never stalls a loop (:mod:`apps.common.mqtt`), and loop timing statistics
(:mod:`apps.common.timing`)."""
