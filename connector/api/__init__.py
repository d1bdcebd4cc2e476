"""HTTP surface: the FastAPI application, its routers and error mapping."""
