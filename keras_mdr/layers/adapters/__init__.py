"""Adapters: HAMUR's hyper adapters and parameter-efficient adapters for transfer."""
