"""Live analysis: windows of media received as they are captured, answered as they complete.

`LiveSession` (`session`) holds one session's media and answers apart from the transport;
`protocol` holds the message shapes that the service's `/v1/live` WebSocket
(`nanoemox.serve.live`) and the file client (`client`, `nanoemox live`) share.
"""

from nanoemox.live.protocol import ProtocolError
from nanoemox.live.session import LiveOptions, LiveSession, check_start
from nanoemox.media.live import LiveLimits

__all__ = ["LiveLimits", "LiveOptions", "LiveSession", "ProtocolError", "check_start"]
