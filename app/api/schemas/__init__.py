"""Request and response bodies of the REST API. None of them ever carries key material."""
