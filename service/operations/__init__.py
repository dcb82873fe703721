"""What operators see and are told: metrics (and their endpoint), the store's and Kafka's
health, `jobwire status`, and the meta-alerts about dead targets."""
