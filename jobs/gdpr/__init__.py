"""GDPR Art. 17 erasure of PinTeach students."""
