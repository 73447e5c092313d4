"""The API's services: each takes a session and the Context, raises ApiError."""
