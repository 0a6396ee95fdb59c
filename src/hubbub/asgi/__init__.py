"""hubbub over ASGI (FastAPI, Starlette, uvicorn): `create_app(settings)` (docs/embedding.md).

Needs an ASGI server: `pip install hubbub[asgi]` brings uvicorn.
"""

from hubbub.asgi.app import HubbubASGI, create_app, from_environment

__all__ = ["HubbubASGI", "create_app", "from_environment"]
