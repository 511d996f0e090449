"""What the routes get from the app (FastAPI dependencies): the shared ``Service`` on ``app.state``."""

from typing import Annotated, Callable

from fastapi import Depends, Request

from vidseek.apps.service.state import Service


async def service(request: Request) -> Service:
    return request.app.state.service


async def frame_renderer(request: Request) -> Callable[[str, float, int], bytes]:
    """``(path, t, width) -> JPEG bytes``: the thumbnail decoder ``create_app`` chose."""
    return request.app.state.render_frame


ServiceDep = Annotated[Service, Depends(service)]
FrameRenderer = Annotated[Callable[[str, float, int], bytes], Depends(frame_renderer)]
