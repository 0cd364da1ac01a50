"""What Pinstack's parts must agree on, written once: which services exist (`services`), the
events they exchange (`events`) and the public limits of the API (`limits`)."""
