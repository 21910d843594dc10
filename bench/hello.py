"""The ceiling: a Quart + hypercorn hello-world, the smallest thing op-proxy's stack can serve."""

from quart import Quart

app = Quart(__name__)


@app.get("/")
async def hello():
    return "hello"
