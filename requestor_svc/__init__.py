"""The requestor service: order requests run as pooled tasks that follow their orders."""
