"""Tact: a Kafka-native contact-policy and journey engine."""
