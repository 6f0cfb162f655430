"""GDPR Art. 17 erasure of Pickatale learners (children), across the platform's databases."""
