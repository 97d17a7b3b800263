"""REST routes: each translates a request into one use case call and its result back."""
