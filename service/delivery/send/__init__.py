"""The send stage: one message to one target, and what it takes to send it well.

- `notifier.py`: the send itself, through the plugin Apprise keeps for the target, inside the
  target policy's egress guard;
- `fit.py`: what the target receives (the format its service shows, within its limits);
- `keepalive.py` and `plain_http.py`: a webhook's kept connection, and the small HTTP client
  that writes its requests;
- `smtp_tls.py`: one TLS context for every email;
- `senders.py`: the sending processes, so sends use more than the service's one core.
"""
